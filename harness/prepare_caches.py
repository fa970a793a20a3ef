"""Build every cache the tests share, once, before pytest starts its workers (``tools/test.sh``):

- the random-weight SD1.5 checkpoint, ControlNet and adapter (``.cache/test-models``);
- Anny's model data (``.cache/anny``, about 1–2 minutes the first time), when anny is installed.

Each step is skipped when its files are current, so a set-up checkout spends well under a second here. Workers
that find the caches built never build them concurrently (two SD1.5-size builds at once can exhaust memory).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time

from harness.comfy_host import REPO_ROOT
from harness.make_test_models import ensure_test_models

ANNY_CACHE = REPO_ROOT / ".cache" / "anny"


def main() -> None:
    start = time.perf_counter()
    ensure_test_models()
    if importlib.util.find_spec("anny") is not None:
        from stablepose_core.body.model import load_body_model

        load_body_model("cpu", os.environ.get("ANNY_CACHE_DIR", ANNY_CACHE))
    print(f"[prepare_caches] test caches ready in {time.perf_counter() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
