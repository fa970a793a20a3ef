"""Build the caches the tests share, once, before pytest starts (``tools/bootstrap.sh --test-caches``):

- ``models``: the random-weight SD1.5 checkpoint, ControlNet and adapter (``.cache/test-models``);
- ``body``: Anny's model data (``.cache/anny``, about a minute the first time), when anny is installed;
- ``dwpose``: random-weight ONNX files of the true YOLOX-L and DWPose-L networks (``.cache/test-models/ckpts``).

    python -m harness.prepare_caches [models] [body] [dwpose]     (all when none is named)

Each part is skipped when its files are current, so a set-up checkout spends well under a second here. The parts
are independent: bootstrap builds each in its own process while it installs the remaining packages.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable

from harness.comfy_host import REPO_ROOT
from harness.dwpose_models import export_dwpose_models
from harness.make_test_models import ensure_test_models

ANNY_CACHE = REPO_ROOT / ".cache" / "anny"


def build_body_cache() -> None:
    """Anny's data in ``$ANNY_CACHE_DIR`` (default ``.cache/anny``, where tests/conftest.py points it)."""
    if importlib.util.find_spec("anny") is None:
        return
    from stablepose_core.body.model import load_body_model

    load_body_model("cpu", os.environ.get("ANNY_CACHE_DIR", ANNY_CACHE))


PARTS: dict[str, Callable[[], object]] = {
    "models": ensure_test_models,
    "body": build_body_cache,
    "dwpose": export_dwpose_models,
}


def main(argv: list[str] | None = None) -> None:
    names = (sys.argv[1:] if argv is None else argv) or list(PARTS)
    unknown = sorted(set(names) - set(PARTS))
    if unknown:
        raise SystemExit(f"prepare_caches: unknown part(s) {unknown}; choose from {sorted(PARTS)}")
    for name in names:
        start = time.perf_counter()
        PARTS[name]()
        print(f"[prepare_caches] {name} ready in {time.perf_counter() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
