"""``OpenPoseExtract``: images -> Stable-Pose pose images (COCO-17, HumanSD colours) + ``POSE_KEYPOINT``.

Thin ComfyUI wrapper around ``stablepose_core.pose_detection`` (detection) and ``stablepose_core.skeleton``
(drawing). Detector weights are looked up, never downloaded, in ``models/pose_detectors`` (settable in
``extra_model_paths.yaml`` as ``pose_detectors``), in the folder given by ``AUX_ANNOTATOR_CKPTS_PATH`` and in
``custom_nodes/comfyui_controlnet_aux*/ckpts``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import comfy.model_management
import comfy.utils
import folder_paths
import numpy as np
import torch

from ..stablepose_core.keypoints import PoseKeypoints, pose_keypoint_frames
from ..stablepose_core.pose_detection import backend_statuses, create_detector
from ..stablepose_core.skeleton import MAX_PEOPLE, render_pose

log = logging.getLogger("stable_pose")

WEIGHTS_FOLDER = "pose_detectors"
NO_BACKEND = "none available (see tooltip)"
FIT_MODES = ("stretch", "fit")


def _register_weights_folder() -> None:
    folder_paths.add_model_folder_path(WEIGHTS_FOLDER, os.path.join(folder_paths.models_dir, WEIGHTS_FOLDER), True)


def weight_roots() -> list[str]:
    """Folders searched for detector weights, in order."""
    roots = list(folder_paths.get_folder_paths(WEIGHTS_FOLDER))
    if os.environ.get("AUX_ANNOTATOR_CKPTS_PATH"):
        roots.append(os.environ["AUX_ANNOTATOR_CKPTS_PATH"])
    for custom_nodes in folder_paths.get_folder_paths("custom_nodes"):
        if os.path.isdir(custom_nodes):
            roots += [
                os.path.join(custom_nodes, entry, "ckpts")
                for entry in sorted(os.listdir(custom_nodes))
                if entry.lower().startswith("comfyui_controlnet_aux")
            ]
    return roots


def _to_uint8_rgb(frame: torch.Tensor) -> np.ndarray:
    """One ComfyUI image (H, W, C) float [0, 1] -> uint8 RGB."""
    pixels = (frame.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    if pixels.shape[-1] == 1:
        return np.repeat(pixels, 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3])


class OpenPoseExtract:
    """Detect (or take) COCO-17 poses and draw them as Stable-Pose was trained to see them."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        statuses = backend_statuses(weight_roots())
        names = [status.name for status in statuses if status.available] or [NO_BACKEND]
        tooltip = "Pose detector. " + "; ".join(
            f"{status.name}: {'ready' if status.available else 'unavailable'} ({status.detail})" for status in statuses
        )
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images to detect people in; the pose images get their size."}),
                "backend": (names, {"default": names[0], "tooltip": tooltip}),
            },
            "optional": {
                "fit": (
                    list(FIT_MODES),
                    {
                        "default": "stretch",
                        "tooltip": "For a pose_keypoint input whose canvas has another aspect ratio than the image: "
                        "stretch it onto the image, or fit it (scale uniformly and centre).",
                    },
                ),
                "pose_keypoint": (
                    "POSE_KEYPOINT",
                    {
                        "tooltip": "Render these poses (OpenPose/DWPose JSON of comfyui_controlnet_aux or a file) "
                        "instead of detecting. One frame for all images, or one per image."
                    },
                ),
            },
        }

    RETURN_TYPES = ("IMAGE", "POSE_KEYPOINT")
    RETURN_NAMES = ("pose_image", "pose_keypoint")
    OUTPUT_TOOLTIPS = (
        "Stable-Pose pose images (COCO-17 limbs in HumanSD colours on black), the image's size.",
        "The poses as OpenPose BODY-18 JSON frames, pixel coordinates.",
    )
    FUNCTION = "extract"
    CATEGORY = "Stable-Pose"
    DESCRIPTION = "Pose images in the format Stable-Pose was trained on, from images or POSE_KEYPOINT."

    def extract(
        self, image: torch.Tensor, backend: str, fit: str = "stretch", pose_keypoint: Any = None
    ) -> tuple[torch.Tensor, list[dict]]:
        if fit not in FIT_MODES:
            raise ValueError(f"fit must be one of {FIT_MODES}, got {fit!r}")
        if image.ndim != 4 or image.shape[0] == 0:
            raise ValueError(f"image must be a batch of at least one image, got shape {tuple(image.shape)}")
        height, width = int(image.shape[1]), int(image.shape[2])
        if pose_keypoint is not None:
            poses = self._given_poses(pose_keypoint_frames(pose_keypoint), image.shape[0], width, height, fit)
        else:
            poses = self._detect(image, backend)
        self._warn_about(poses)
        pose_images = np.stack([render_pose(pose) for pose in poses])
        return torch.from_numpy(pose_images).float() / 255.0, [pose.to_pose_keypoint() for pose in poses]

    @staticmethod
    def _given_poses(frames: list[dict], batch: int, width: int, height: int, fit: str) -> list[PoseKeypoints]:
        if len(frames) != batch and 1 not in (len(frames), batch):
            raise ValueError(
                f"pose_keypoint has {len(frames)} frames but image has {batch}: give one frame, one image, "
                "or as many frames as images"
            )
        poses = []
        for index in range(max(len(frames), batch)):
            pose = PoseKeypoints.from_pose_keypoint(frames[index % len(frames)], default_size=(width, height))
            poses.append(pose.fit_to_canvas(width, height) if fit == "fit" else pose.scale_to(width, height))
        return poses

    @staticmethod
    def _detect(image: torch.Tensor, backend: str) -> list[PoseKeypoints]:
        if backend == NO_BACKEND:
            statuses = backend_statuses(weight_roots())
            raise RuntimeError(
                "no pose detector can run; connect a pose_keypoint input or enable one: "
                + "; ".join(f"{status.name}: {status.detail}" for status in statuses)
            )
        detector = create_detector(backend, weight_roots(), str(comfy.model_management.get_torch_device()))
        progress = comfy.utils.ProgressBar(image.shape[0])
        poses = []
        try:
            for frame in image:
                comfy.model_management.throw_exception_if_processing_interrupted()
                poses.append(detector(_to_uint8_rgb(frame)))
                progress.update(1)
        finally:
            detector.close()
        return poses

    @staticmethod
    def _warn_about(poses: list[PoseKeypoints]) -> None:
        empty = [index for index, pose in enumerate(poses) if not pose.visible.any()]
        if empty:
            log.warning("Stable-Pose: no person found in frame(s) %s: their pose images are black", empty)
        crowded = [index for index, pose in enumerate(poses) if pose.num_people > MAX_PEOPLE]
        if crowded:
            log.warning(
                "Stable-Pose: frame(s) %s have more than %d people; only the first %d are drawn (as in training)",
                crowded,
                MAX_PEOPLE,
                MAX_PEOPLE,
            )


_register_weights_folder()

NODE_CLASS_MAPPINGS = {"OpenPoseExtract": OpenPoseExtract}
NODE_DISPLAY_NAME_MAPPINGS = {"OpenPoseExtract": "OpenPose Extract (Stable-Pose)"}
