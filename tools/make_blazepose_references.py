"""Record ``tests/data/blazepose/mediapipe_0.10.14.json``: what MediaPipe itself finds on the test photos.

Runs ``mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)`` of ``mediapipe==0.10.14`` (the
pack's pose backend before the networks were embedded; wheels up to Python 3.12 only) on :func:`reference_photos`
and saves the 33 BlazePose landmarks (x, y in pixels, visibility) of each and its 33 world landmarks (x, y, z in
metres), or ``null`` when nobody is found.
``tests/test_blazepose.py`` compares the embedded PyTorch BlazePose with these on any Python.

Usage (Python <= 3.12 with ``pip install mediapipe==0.10.14``): ``python -m tools.make_blazepose_references``.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
from skimage import data

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "tests" / "data" / "blazepose" / "mediapipe_0.10.14.json"


def reference_photos() -> dict[str, np.ndarray]:
    """RGB uint8 photos: a person facing the camera (also turned a quarter), one side-on, each letterboxed both
    ways, and nobody."""
    astronaut, camera = data.astronaut(), np.repeat(data.camera()[..., None], 3, axis=-1)
    return {
        "astronaut": astronaut,
        "astronaut_turned": np.ascontiguousarray(np.rot90(astronaut)),
        "camera": camera,
        "astronaut_wide": np.ascontiguousarray(np.pad(astronaut, ((0, 0), (200, 100), (0, 0)))),
        "astronaut_tall": np.ascontiguousarray(astronaut[:, 100:400]),
        "camera_mirrored": np.ascontiguousarray(camera[:, ::-1]),
        "coffee": data.coffee(),
    }


def main() -> None:
    import mediapipe as mp

    results, world = {}, {}
    with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1) as pose:
        for name, image in reference_photos().items():
            height, width = image.shape[:2]
            found = pose.process(image)
            results[name], world[name] = None, None
            if found.pose_landmarks is not None:  # pixels, visibility; metres
                results[name] = [[m.x * width, m.y * height, m.visibility] for m in found.pose_landmarks.landmark]
                world[name] = [[m.x, m.y, m.z] for m in found.pose_world_landmarks.landmark]
    REFERENCE_FILE.parent.mkdir(parents=True, exist_ok=True)
    document = {"mediapipe": version("mediapipe"), "landmarks": results, "world_landmarks": world}
    REFERENCE_FILE.write_text(json.dumps(document, indent=1))
    print(f"wrote {REFERENCE_FILE}")


if __name__ == "__main__":
    main()
