"""``python -m stablepose_core.convert``: the checkpoint converter (:mod:`stablepose_core.model.convert`)."""

import sys

from .model.convert import main

if __name__ == "__main__":
    sys.exit(main())
