"""``python -m stablepose_core.evaluate``: see :mod:`stablepose_core.evaluate.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
