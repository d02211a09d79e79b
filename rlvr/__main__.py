"""`python -m rlvr`: the same as the `rlvr` console script."""

import sys

from rlvr.cli import main

if __name__ == "__main__":
    sys.exit(main())
