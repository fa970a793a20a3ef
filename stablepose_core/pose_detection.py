"""Pose detectors: RGB image -> COCO-17 :class:`PoseKeypoints` in the image's pixels.

Backends (none downloads anything; each is offered only when it can run):

* ``mediapipe``: BlazePose of ``mediapipe==0.10.14`` (``model_complexity=1``, whose model files ship inside the
  wheel; complexities 0 and 2 would download), one person, BlazePose-33 mapped to COCO-17 with each landmark's
  visibility as confidence.
* ``openpose``: controlnet_aux's OpenPose body estimator (multi-person) from a local ``body_pose_model.pth``,
  loaded by controlnet_aux's own ``Body`` class; joints keep their heat-map peak score.
* ``dwpose``: DWPose (multi-person) from local ``yolox_l.onnx`` + ``dw-ll_ucoco_384.onnx`` with onnxruntime
  (:mod:`.dwpose`). controlnet_aux 0.0.10's own ``DWposeDetector`` needs mmcv/mmdet/mmpose and ``.pth`` files
  instead, so the pack runs the ONNX files comfyui_controlnet_aux downloads.

Weights are searched under *roots* (folders the caller chooses: ComfyUI's model folders, comfyui_controlnet_aux's
``ckpts``), directly or in the layouts those tools use (:data:`DWPOSE_SUBFOLDERS`, :data:`OPENPOSE_SUBFOLDERS`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .dwpose import DETECTOR_FILE, POSE_FILE, DWPoseDetector, rgb_uint8
from .keypoints import PoseKeypoints
from .pose_formats import to_coco17

MEDIAPIPE = "mediapipe"
OPENPOSE = "openpose"
DWPOSE = "dwpose"

OPENPOSE_FILE = "body_pose_model.pth"
# Where ControlNet / controlnet_aux / comfyui_controlnet_aux keep it below a checkpoints root
# (comfyui_controlnet_aux: ckpts/<hub repo>/<file>).
OPENPOSE_SUBFOLDERS = ("", "lllyasviel/Annotators", "lllyasviel/ControlNet/annotator/ckpts", "annotator/ckpts")
DWPOSE_SUBFOLDERS = ("", "yzd-v/DWPose")  # comfyui_controlnet_aux: ckpts/yzd-v/DWPose/
MEDIAPIPE_MODEL_FILES = (
    "modules/pose_detection/pose_detection.tflite",
    "modules/pose_landmark/pose_landmark_full.tflite",
)


class PoseDetector(Protocol):
    """Detects the people of one image; ``close()`` frees the model."""

    def __call__(self, image: np.ndarray) -> PoseKeypoints: ...

    def close(self) -> None: ...


class MediaPipePoseDetector:
    """BlazePose (single person) of MediaPipe 0.10.14, offline model (``model_complexity=1``)."""

    def __init__(self) -> None:
        import mediapipe as mp

        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)

    def __call__(self, image: np.ndarray) -> PoseKeypoints:
        image = rgb_uint8(image)
        height, width = image.shape[:2]
        result = self._pose.process(image)
        if result.pose_landmarks is None:
            return PoseKeypoints.empty(width, height)
        landmarks = np.array(
            [(mark.x * width, mark.y * height, mark.visibility) for mark in result.pose_landmarks.landmark],
            np.float32,
        )
        return PoseKeypoints(to_coco17(landmarks[None], "blazepose33"), width, height)

    def close(self) -> None:
        self._pose.close()


class OpenPoseBodyDetector:
    """controlnet_aux's OpenPose body model (BODY-18, multi-person), people ordered by total score."""

    def __init__(self, weights: str | os.PathLike, device: str = "cpu") -> None:
        from controlnet_aux.open_pose.body import Body

        self._body = Body(str(weights)).to(device)

    def __call__(self, image: np.ndarray) -> PoseKeypoints:
        image = rgb_uint8(image)
        candidate, subset = self._body(np.ascontiguousarray(image[:, :, ::-1]))  # Body expects BGR
        bodies = self._body.format_body_result(candidate, subset)
        return bodies_to_keypoints(bodies, image.shape[1], image.shape[0])

    def close(self) -> None:
        del self._body


def bodies_to_keypoints(bodies: Sequence, width: int, height: int) -> PoseKeypoints:
    """controlnet_aux ``BodyResult`` list (BODY-18 ``Keypoint`` or None, pixels) -> COCO-17, best score first."""
    bodies = sorted(bodies, key=lambda body: -body.total_score)
    points = np.zeros((len(bodies), 18, 3), np.float32)
    for person, body in enumerate(bodies):
        for joint, keypoint in enumerate(body.keypoints):
            if keypoint is not None:
                points[person, joint] = (keypoint.x, keypoint.y, keypoint.score)
    return PoseKeypoints(to_coco17(points, "openpose18"), width, height)


def find_weights(filename: str, roots: Sequence[str | os.PathLike], subfolders: Sequence[str]) -> Path | None:
    """First existing ``root/subfolder/filename``, roots in order, subfolders in order."""
    for root in roots:
        for subfolder in subfolders:
            candidate = Path(root, subfolder, filename)
            if candidate.is_file():
                return candidate
    return None


def mediapipe_ready() -> bool:
    """mediapipe importable with its bundled BlazePose (full) model files present."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return False
    package = Path(next(iter(spec.submodule_search_locations)))
    return all((package / name).is_file() for name in MEDIAPIPE_MODEL_FILES)


@dataclass(frozen=True)
class BackendStatus:
    """A backend, whether it can run, and the weights it uses or how to make it runnable."""

    name: str
    available: bool
    detail: str
    create: Callable[[str], PoseDetector] | None = None  # device -> detector, when available


def _mediapipe_status() -> BackendStatus:
    if not mediapipe_ready():
        return BackendStatus(MEDIAPIPE, False, "pip install mediapipe==0.10.14 (its wheel ships the model)")
    return BackendStatus(MEDIAPIPE, True, "BlazePose, 1 person, built in", lambda device: MediaPipePoseDetector())


def _put_in(files: str, roots: Sequence[str | os.PathLike]) -> str:
    folders = ", ".join(str(Path(root)) for root in roots) or "(no folder configured)"
    return f"put {files} in one of: {folders}"


def _openpose_status(roots: Sequence[str | os.PathLike]) -> BackendStatus:
    how = _put_in(f"{OPENPOSE_FILE} (hub repo lllyasviel/Annotators)", roots)
    if importlib.util.find_spec("controlnet_aux") is None:
        return BackendStatus(OPENPOSE, False, f"pip install controlnet_aux, then {how}")
    weights = find_weights(OPENPOSE_FILE, roots, OPENPOSE_SUBFOLDERS)
    if weights is None:
        return BackendStatus(OPENPOSE, False, how)
    return BackendStatus(
        OPENPOSE, True, f"multi-person, {weights}", lambda device: OpenPoseBodyDetector(weights, device)
    )


def _dwpose_status(roots: Sequence[str | os.PathLike]) -> BackendStatus:
    how = _put_in(f"{DETECTOR_FILE} and {POSE_FILE} (hub repo yzd-v/DWPose)", roots)
    if importlib.util.find_spec("onnxruntime") is None:
        return BackendStatus(DWPOSE, False, f"pip install onnxruntime, then {how}")
    detector, pose = (find_weights(name, roots, DWPOSE_SUBFOLDERS) for name in (DETECTOR_FILE, POSE_FILE))
    if detector is None or pose is None:
        return BackendStatus(DWPOSE, False, how)
    return BackendStatus(
        DWPOSE, True, f"multi-person, {detector.parent}", lambda device: DWPoseDetector(detector, pose, device)
    )


def backend_statuses(roots: Sequence[str | os.PathLike]) -> list[BackendStatus]:
    """Every backend with its status, in order of preference (the first available one is the default)."""
    return [_mediapipe_status(), _dwpose_status(roots), _openpose_status(roots)]


def create_detector(name: str, roots: Sequence[str | os.PathLike], device: str = "cpu") -> PoseDetector:
    """Build backend ``name``; a clear error says how to enable it when it cannot run."""
    for status in backend_statuses(roots):
        if status.name == name:
            if status.create is None:
                raise RuntimeError(f"pose backend {name!r} is not available: {status.detail}")
            return status.create(device)
    raise ValueError(f"unknown pose backend {name!r}")
