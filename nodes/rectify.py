"""Rectify: regenerate people whose pose is implausible, in the graph (``docs/rectify.md``).

The steps of Diffusion-HPC a user would otherwise wire by hand get a node each: the noise mask of the person
(``StablePoseRectifyMask``), the plausibility gate that keeps plausible images untouched and does not even sample
the regeneration when nothing needs it (``StablePoseRectifyGate``, a lazy input), and a before/after preview
(``StablePoseRectifyPreview``). Fitting and rendering the body are ``StablePoseFitBody`` / ``StablePoseRenderBody``;
the regeneration itself is stock ComfyUI (VAE Encode, Set Latent Noise Mask, Apply ControlNet, Apply Adapter,
KSampler at denoise 0.7). Core: ``stablepose_core.poses.regions``, ``stablepose_core.evaluate.preview``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from ..stablepose_core.evaluate.preview import TILE_LABELS, number_line, tile_preview
from ..stablepose_core.poses.regions import rectify_mask
from .extract import given_poses, to_uint8_rgb

CATEGORY = "Stable-Pose/rectify"
GATE_MODES = ("implausible", "all")


def _batch(image: torch.Tensor, name: str = "image") -> tuple[int, int, int]:
    if image.ndim != 4 or image.shape[0] == 0:
        raise ValueError(f"{name} must be a batch of at least one image, got shape {tuple(image.shape)}")
    return int(image.shape[0]), int(image.shape[1]), int(image.shape[2])


def mask_batch(mask: torch.Tensor | None, batch: int, height: int, width: int, name: str) -> list[Any]:
    """A ComfyUI ``MASK`` ((H, W) or (B, H, W); one for all images or one per image) as one numpy mask per image."""
    if mask is None:
        return [None] * batch
    masks = mask[None] if mask.ndim == 2 else mask
    if masks.ndim != 3 or masks.shape[0] not in (1, batch) or tuple(masks.shape[1:]) != (height, width):
        raise ValueError(
            f"{name} must be one {width}x{height} mask or one per image ({batch}), got shape {tuple(mask.shape)}: "
            "render it at the image's size"
        )
    return [masks[index % masks.shape[0]].detach().float().cpu().numpy() for index in range(batch)]


class StablePoseRectifyMask:
    """Where the rectification pass repaints: the person, grown by a margin, minus what stands in front of it."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The first image(s); the mask gets their size and batch."}),
                "pose_keypoint": (
                    "POSE_KEYPOINT",
                    {"tooltip": "The people as found in the image (Extract Poses): where they are now."},
                ),
                "grow": (
                    "INT",
                    {
                        "default": 16,
                        "min": 0,
                        "max": 512,
                        "tooltip": "Margin in pixels around the person, so limbs can move a little and the seam "
                        "falls on background.",
                    },
                ),
            },
            "optional": {
                "silhouette": ("MASK", {"tooltip": "The fitted body's silhouette (Render Body)."}),
                "target": (
                    "POSE_KEYPOINT",
                    {
                        "tooltip": "The pose that was asked for (Stable-Pose generations): its region is repainted "
                        "too, so the person can move there. Mapped onto the image as Apply Adapter maps it."
                    },
                ),
                "occluders": (
                    "MASK",
                    {"tooltip": "Objects in front of the person (e.g. from a segmentation node): never repainted."},
                ),
            },
        }

    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    OUTPUT_TOOLTIPS = ("1 where the person may be repainted (for Set Latent Noise Mask), 0 elsewhere.",)
    FUNCTION = "mask"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "The noise mask of a rectification pass: the body silhouette united with the region the person's pose "
        "covers (and the target pose's), grown by a margin, minus occluders. Outside it the image keeps its pixels."
    )

    def mask(
        self,
        image: torch.Tensor,
        pose_keypoint: Any,
        grow: int,
        silhouette: torch.Tensor | None = None,
        target: Any = None,
        occluders: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor]:
        batch, height, width = _batch(image)
        found = given_poses(pose_keypoint, batch, width, height)
        wanted = [None] * batch if target is None else given_poses(target, batch, width, height, "crop", "target")
        if len(found) != batch or len(wanted) != batch:
            raise ValueError(f"give one pose frame for all {batch} images or one per image")
        bodies = mask_batch(silhouette, batch, height, width, "silhouette")
        fronts = mask_batch(occluders, batch, height, width, "occluders")
        masks = [
            rectify_mask(
                height, width, [pose for pose in (found[i], wanted[i]) if pose is not None], bodies[i], fronts[i], grow
            )
            for i in range(batch)
        ]
        return (torch.from_numpy(np.stack(masks)),)


def needs_rectifying(body: Any, batch: int, mode: str) -> list[bool]:
    """Per image: does it go through the regeneration? ("implausible": some person of its frame is not plausible)."""
    if mode not in GATE_MODES:
        raise ValueError(f"mode must be one of {GATE_MODES}, got {mode!r}")
    frames = list(body.frames)
    if len(frames) != batch:
        raise ValueError(f"body has {len(frames)} frames but image has {batch}: fit the body on these images")
    if mode == "all":
        return [True] * batch
    return [any(not person.plausible for person in frame.people) for frame in frames]


class StablePoseRectifyGate:
    """Plausible images pass through untouched; the others are replaced by their rectified version."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The first image(s)."}),
                "body": ("STABLE_POSE_BODY", {"tooltip": "The bodies fitted to them (Fit Body)."}),
                "rectified": (
                    "IMAGE",
                    {
                        "lazy": True,
                        "tooltip": "The regenerated image(s) (VAE Decode of the rectification pass). Only computed "
                        "when some image needs it: with every image plausible nothing upstream of it is sampled.",
                    },
                ),
                "mode": (
                    list(GATE_MODES),
                    {
                        "default": "implausible",
                        "tooltip": "implausible: rectify only images with a person the body prior finds implausible; "
                        "all: rectify every image (e.g. an extra cycle).",
                    },
                ),
            }
        }

    RETURN_TYPES = ("IMAGE", "INT", "STRING")
    RETURN_NAMES = ("image", "rectified_count", "report")
    OUTPUT_TOOLTIPS = (
        "Each image: its rectified version if it needed one, else the first image unchanged.",
        "How many images were replaced.",
        "JSON list, one object per image: rectified (bool), and per person its plausibility score and verdict.",
    )
    FUNCTION = "gate"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Diffusion-HPC's plausibility gate, per image of a batch: images whose people are all plausible pass "
        "through untouched and the regeneration branch is not even run when no image needs it."
    )

    def check_lazy_status(self, image: torch.Tensor, body: Any, mode: str, rectified: Any = None) -> list[str]:
        return ["rectified"] if any(needs_rectifying(body, _batch(image)[0], mode)) else []

    def gate(
        self, image: torch.Tensor, body: Any, mode: str, rectified: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, int, str]:
        chosen = needs_rectifying(body, _batch(image)[0], mode)
        result = image.clone()
        if any(chosen):
            if rectified is None or tuple(rectified.shape) != tuple(image.shape):
                shape = None if rectified is None else tuple(rectified.shape)
                raise ValueError(f"rectified must match image's shape {tuple(image.shape)}, got {shape}")
            pick = torch.tensor(chosen, device=image.device)
            result = torch.where(pick[:, None, None, None], rectified.to(image), image)
        report = [
            {
                "rectified": flag,
                "people": [{"score": float(p.score), "plausible": bool(p.plausible)} for p in frame.people],
            }
            for flag, frame in zip(chosen, body.frames, strict=True)
        ]
        return result, int(sum(chosen)), json.dumps(report)


def _optional_number(tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"forceInput": True, "tooltip": tooltip})


class StablePoseRectifyPreview:
    """Image, body depth, skeleton and result side by side, with the numbers before and after."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The first image(s)."}),
                "depth": ("IMAGE", {"tooltip": "The body's depth (Render Body)."}),
                "skeleton": ("IMAGE", {"tooltip": "The pose image fed to Apply Adapter in the rectification."}),
                "result": ("IMAGE", {"tooltip": "The gate's output."}),
            },
            "optional": {
                "score_before": _optional_number("Pose fidelity (OKS, Score Pose Fidelity) of the first image."),
                "score_after": _optional_number("Pose fidelity (OKS, Score Pose Fidelity) of the result."),
                "plausibility_before": _optional_number("Plausibility score of the first image (Fit Body)."),
                "plausibility_after": _optional_number("Plausibility score of the result (Fit Body on it)."),
            },
        }

    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("preview", "summary")
    OUTPUT_TOOLTIPS = (
        "Per image: image | body depth | skeleton | result, the numbers below.",
        "The numbers as text: OKS (higher is better) and plausibility score (lower is better), before -> after.",
    )
    FUNCTION = "preview"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Before/after evidence of a rectification: the first image, the body's depth, the skeleton that guided "
        "the regeneration and the result side by side, with pose fidelity (OKS) and plausibility before and after."
    )

    def preview(
        self,
        image: torch.Tensor,
        depth: torch.Tensor,
        skeleton: torch.Tensor,
        result: torch.Tensor,
        score_before: float | None = None,
        score_after: float | None = None,
        plausibility_before: float | None = None,
        plausibility_after: float | None = None,
    ) -> tuple[torch.Tensor, str]:
        batch = _batch(image)[0]
        inputs = {"depth": depth, "skeleton": skeleton, "result": result}
        for name, tensor in inputs.items():
            count = _batch(tensor, name)[0]
            if count not in (1, batch):
                raise ValueError(f"{name} has {count} images but image has {batch}: give one or one per image")
        lines = [
            number_line("OKS", score_before, score_after),
            number_line("plausibility score", plausibility_before, plausibility_after),
        ]
        summary = "   ".join(line for line in lines if line)
        tiles = [
            tile_preview(
                [to_uint8_rgb(t[i % t.shape[0]]) for t in (image, depth, skeleton, result)], TILE_LABELS, summary
            )
            for i in range(batch)
        ]
        return torch.from_numpy(np.stack(tiles)).float() / 255.0, summary


NODE_CLASS_MAPPINGS = {
    "StablePoseRectifyMask": StablePoseRectifyMask,
    "StablePoseRectifyGate": StablePoseRectifyGate,
    "StablePoseRectifyPreview": StablePoseRectifyPreview,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "StablePoseRectifyMask": "Rectify Person Mask (Stable-Pose)",
    "StablePoseRectifyGate": "Rectify Gate (Stable-Pose)",
    "StablePoseRectifyPreview": "Rectify Preview Before and After (Stable-Pose)",
}
