"""Build the caches the tests share, once, before pytest starts (``tools/bootstrap.sh --test-caches``):

- ``models``: the random-weight SD1.5 checkpoint, ControlNet and adapter (``.cache/test-models``);
- ``body``: Anny's model data (``.cache/anny``, about a minute the first time), when anny is installed;
- ``dwpose``: random-weight ONNX files of the true YOLOX-L and DWPose-L networks (``.cache/test-models/ckpts``).

    python -m harness.prepare_caches [models] [body] [dwpose]     (all when none is named)

Each part is skipped when its files are current, so a set-up checkout spends well under a second here. The parts
are independent: bootstrap builds each in its own process while it installs the remaining packages.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from harness.comfy_host import REPO_ROOT
from harness.dwpose_models import export_dwpose_models
from harness.make_test_models import ensure_test_models

ANNY_CACHE = REPO_ROOT / ".cache" / "anny"


def load_blend_shape(filename: str, vertices_count: int, world_transformation: Any, dtype: torch.dtype) -> Any:
    """anny 0.6's ``load_blend_shape`` (``anny/models/full_model.py``) with the text parsed by numpy in one call
    instead of a Python loop over its lines: the same doubles cast to ``dtype``, the last line of a vertex winning,
    the same range check. The cached tensors are identical; the build takes 15 s instead of 60-80 s."""
    with gzip.open(filename, "rt") as archive, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an empty target (no offsets) is valid
        table = np.loadtxt(archive, ndmin=2).reshape(-1, 4)
    ids = table[:, 0].astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= vertices_count):
        raise ValueError(f"{filename}: vertex index outside 0..{vertices_count - 1}")
    last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
    blend_shape = torch.zeros((vertices_count, 3), dtype=dtype)
    blend_shape[torch.from_numpy(ids[last])] = torch.from_numpy(table[last, 1:]).to(dtype)
    return world_transformation.apply(blend_shape)


def build_body_cache() -> None:
    """Anny's data in ``$ANNY_CACHE_DIR`` (default ``.cache/anny``, where tests/conftest.py points it), built with
    the faster blend-shape reader above."""
    if importlib.util.find_spec("anny") is None:
        return
    from anny.models import full_model

    from stablepose_core.body.model import load_body_model

    original, full_model.load_blend_shape = full_model.load_blend_shape, load_blend_shape
    try:
        load_body_model("cpu", os.environ.get("ANNY_CACHE_DIR", ANNY_CACHE))
    finally:
        full_model.load_blend_shape = original


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
