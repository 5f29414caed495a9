"""The xunit2 JUnit schema (pytest's testing/example_scripts/junit-10.xsd), as `make deps`
put it in the cache: never downloaded by a test. schema() skips the calling test, saying
why, when it or xmlschema (the dev extra) is not there."""

from typing import Any

import pytest

from harness.stages.paths import cache_dir

XSD_NAME = "junit-10.xsd"


def schema() -> Any:
    """The xunit2 XMLSchema; pytest.skip when it cannot be had."""
    xmlschema = pytest.importorskip("xmlschema",
                                    reason="xmlschema is in the dev extra: make deps")
    xsd = cache_dir() / XSD_NAME
    if not xsd.is_file():
        pytest.skip(f"no xunit2 schema at {xsd}: `make deps` fetches it from pytest's sdist "
                    "(needs PyPI once)")
    return xmlschema.XMLSchema(str(xsd))
