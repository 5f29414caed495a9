"""`highmem gdb`, `highmem pte`, `highmem kmaps`, `highmem vmaps`, `highmem layout`:
live-mapping inspection (issue 5). Subcommands are added to the CLI by register()."""

import argparse


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the inspection subcommands to `highmem`."""
