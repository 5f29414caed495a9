"""Errors a user can cause: one line saying what happened, one saying what to do."""


class HarnessError(Exception):
    """Base of all user-facing errors; `cli.main` prints these without a traceback."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix

    def __str__(self) -> str:
        return f"error: {self.what}\nfix: {self.fix}"


class SourceError(HarnessError):
    """The kernel source is missing, unreadable, or of a version we cannot use."""


class ConfigError(HarnessError):
    """A Kconfig fragment asked for options the final .config does not have."""


class BuildError(HarnessError):
    """The kernel or a module failed to build."""


class BootError(HarnessError):
    """QEMU or the guest kernel did not come up as expected."""


class GuestError(HarnessError):
    """A command in the guest failed or timed out."""


class GdbError(HarnessError):
    """gdb failed, or did not answer in time."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: QEMU and gdb are stopped on the way out (cli.main
    turns the signal into this exception)."""
