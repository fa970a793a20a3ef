"""``StablePoseScore`` and ``StablePoseSelectBest``: how well generated images follow their target pose.

Thin ComfyUI wrappers: detection and pose inputs as ``OpenPoseExtract`` takes them (``nodes.extract``), scoring in
``stablepose_core.evaluate.score`` (COCO OKS, people matched one-to-one), the picture in
``stablepose_core.evaluate.overlay``. ``docs/evaluation.md`` explains the numbers.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from ..stablepose_core.evaluate.overlay import draw_score_overlay
from ..stablepose_core.evaluate.score import ImageScore, score_image
from ..stablepose_core.poses.keypoints import PoseKeypoints, pose_keypoint_frames
from .extract import backend_input, detect_poses, given_poses, to_uint8_rgb

CATEGORY = "Stable-Pose/evaluation"
TARGET_TOOLTIP = (
    "The pose the images should show (POSE_KEYPOINT, e.g. from Extract Poses (Stable-Pose) or Edit Poses "
    "(Stable-Pose)): one frame for all images or one per image. Mapped onto each image as Apply Adapter "
    "(Stable-Pose) maps a pose image onto the latent (centre crop when the aspect ratios differ)."
)
DETECTED_TOOLTIP = (
    "Optional: poses already detected in the images (POSE_KEYPOINT, one frame per image, e.g. from another "
    "pack's detector or a previous Score Pose Fidelity (Stable-Pose)); when connected, no detector runs."
)


def _pose_inputs() -> dict[str, dict[str, Any]]:
    return {
        "required": {
            "images": ("IMAGE", {"tooltip": "Generated images to score, e.g. the VAE Decode output of a batch."}),
            "target": ("POSE_KEYPOINT", {"tooltip": TARGET_TOOLTIP}),
            "backend": backend_input(),
        },
        "optional": {"detected": ("POSE_KEYPOINT", {"tooltip": DETECTED_TOOLTIP})},
    }


def score_batch(
    images: torch.Tensor, target: Any, backend: str, detected: Any = None
) -> tuple[list[PoseKeypoints], list[PoseKeypoints], list[ImageScore]]:
    """Target and detected poses on each image's canvas, and each image's score."""
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"images must be a batch of at least one image, got shape {tuple(images.shape)}")
    batch, height, width = (int(size) for size in images.shape[:3])
    targets = given_poses(target, batch, width, height, fit="crop", name="target")
    if len(targets) != batch:
        raise ValueError(f"target has {len(targets)} frames but images has {batch}: give one frame or one per image")
    if detected is None:
        found = detect_poses(images, backend)
    else:
        frames = pose_keypoint_frames(detected)
        if len(frames) != batch:
            raise ValueError(f"detected has {len(frames)} frames but images has {batch}: give one frame per image")
        found = given_poses(frames, batch, width, height, name="detected")
    scores = []
    for index, (goal, people) in enumerate(zip(targets, found, strict=True)):
        try:
            scores.append(score_image(goal, people))
        except ValueError as error:
            raise ValueError(f"target for image {index}: {error}") from error
    return targets, found, scores


class StablePoseScore:
    """Score each image by how well the people in it follow the target pose (COCO OKS)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return _pose_inputs()

    RETURN_TYPES = ("IMAGE", "FLOAT", "STRING", "POSE_KEYPOINT")
    RETURN_NAMES = ("overlay", "score", "report", "detected")
    OUTPUT_TOOLTIPS = (
        "Each image dimmed, the target pose in Stable-Pose colours, the detected people in thin white, per target "
        "joint a line to the detected joint coloured by its similarity (green good, red bad; a red cross: missing), "
        "and the image's OKS.",
        "Mean OKS over the batch, 0 (pose not followed, or nobody) to 1 (every target joint in place).",
        "JSON list, one object per image: oks, people_target, people_found, count_error, and per target person "
        "the matched detection, its OKS and per joint the error in pixels and the similarity.",
        "The detected poses (OpenPose BODY-18 frames, pixels), one per image.",
    )
    FUNCTION = "score"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Pose fidelity: detects the people in each image and compares them with the target pose by COCO's "
        "object keypoint similarity (OKS), people matched one-to-one. A target person nobody matches scores 0, "
        "so an image with nobody in it scores 0; count_error says how many people are missing or extra."
    )

    def score(
        self, images: torch.Tensor, target: Any, backend: str, detected: Any = None
    ) -> tuple[torch.Tensor, float, str, list[dict]]:
        targets, found, scores = score_batch(images, target, backend, detected)
        overlays = np.stack(
            [
                draw_score_overlay(to_uint8_rgb(image), goal, people, score)
                for image, goal, people, score in zip(images, targets, found, scores, strict=True)
            ]
        )
        report = json.dumps([score.to_dict() for score in scores])
        mean = float(np.mean([score.oks for score in scores]))
        return torch.from_numpy(overlays).float() / 255.0, mean, report, [pose.to_pose_keypoint() for pose in found]


class StablePoseSelectBest:
    """Keep the k images that follow the target pose best."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        inputs = _pose_inputs()
        inputs["required"]["k"] = (
            "INT",
            {"default": 2, "min": 1, "max": 4096, "tooltip": "How many images to keep (at most the batch size)."},
        )
        return inputs

    RETURN_TYPES = ("IMAGE", "INT", "FLOAT")
    RETURN_NAMES = ("images", "indices", "scores")
    OUTPUT_IS_LIST = (False, True, True)
    OUTPUT_TOOLTIPS = (
        "The best k images, best first.",
        "Their indices in the input batch (a list: e.g. into Latent From Batch to refine the winners).",
        "Their OKS scores (a list), best first.",
    )
    FUNCTION = "select"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Best-of-N by pose fidelity: scores every image like Score Pose Fidelity (Stable-Pose) (COCO OKS against the "
        "target pose) and returns the k best, their batch indices and scores. Ties keep batch order."
    )

    def select(
        self, images: torch.Tensor, target: Any, backend: str, k: int, detected: Any = None
    ) -> tuple[torch.Tensor, list[int], list[float]]:
        _, _, scores = score_batch(images, target, backend, detected)
        oks = np.array([score.oks for score in scores])
        best = np.argsort(-oks, kind="stable")[: max(1, int(k))]
        return images[torch.from_numpy(best)], [int(i) for i in best], [float(oks[i]) for i in best]


NODE_CLASS_MAPPINGS = {"StablePoseScore": StablePoseScore, "StablePoseSelectBest": StablePoseSelectBest}
NODE_DISPLAY_NAME_MAPPINGS = {
    "StablePoseScore": "Score Pose Fidelity (Stable-Pose)",
    "StablePoseSelectBest": "Select Best by Pose Fidelity (Stable-Pose)",
}
