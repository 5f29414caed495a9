"""`python -m harness.cli`: the `highmem` command (harness/frontends/cli.py) under the module
name the integration tests, scripts/bench.py and `highmem boot`'s guest records use."""

import sys

from .frontends.cli import main

if __name__ == "__main__":
    sys.exit(main())
