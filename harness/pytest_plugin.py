"""pytest plugin (entry point `pytest11: highmem`): options shared by the project's tests.

Issue 4 grows this into fixtures (kernel, guest, gdb, module); for now it registers the
options the integration tests read.
"""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("highmem", "highmem-harness (i386 PAE guest)")
    g.addoption("--highmem-source", default=None,
                help="kernel tree or tarball for integration tests (default: linux-source-6.12)")
    g.addoption("--highmem-accel", default="auto", choices=("auto", "kvm", "tcg"),
                help="QEMU acceleration for integration tests")
    parser.addini("highmem_source", "kernel tree or tarball for integration tests")
