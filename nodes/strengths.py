"""Strength keyframe nodes: Stable-Pose strength per frame and over the sampling schedule (math in
``stablepose_core.model.strengths``; pose keyframes are ``stablepose_core.poses.keyframes``).

Advanced-ControlNet's ``LATENT_KEYFRAME`` / ``TIMESTEP_KEYFRAME`` are accepted by ``ApplyStablePose`` too, read
through their documented fields (``keyframes``, ``batch_index``, ``strength``, ``start_percent``) without
importing that pack.
"""

from __future__ import annotations

from ..stablepose_core.model.strengths import CURVES, FrameStrengths, TimestepSegment, TimestepStrengths

CATEGORY = "Stable-Pose/strength keyframes"
FRAME_STRENGTHS = "STABLE_POSE_FRAME_STRENGTHS"
TIMESTEP_STRENGTHS = "STABLE_POSE_TIMESTEP_STRENGTHS"
ACN_NULL_STRENGTH = 0.0  # Advanced-ControlNet: frames without a latent keyframe get null_latent_kf_strength (0)


def frame_strengths_from(value) -> FrameStrengths | None:
    """Our FrameStrengths, or an Advanced-ControlNet LatentKeyframeGroup (listed frames only, others 0)."""
    if value is None or isinstance(value, FrameStrengths):
        return value
    keyframes = getattr(value, "keyframes", None)
    if keyframes is None or not all(hasattr(k, "batch_index") and hasattr(k, "strength") for k in keyframes):
        raise ValueError(f"frame_strength: expected Stable-Pose frame strengths or a LATENT_KEYFRAME, got {value!r}")
    if not keyframes:
        raise ValueError("frame_strength: the LATENT_KEYFRAME group is empty; add at least one keyframe")
    pairs = tuple((int(k.batch_index), float(k.strength)) for k in keyframes)
    return FrameStrengths(pairs, "hold", unlisted=ACN_NULL_STRENGTH)


def timestep_strengths_from(value) -> TimestepStrengths | None:
    """Our TimestepStrengths, or an Advanced-ControlNet TimestepKeyframeGroup (each strength holds until the next
    keyframe's start_percent)."""
    if value is None or isinstance(value, TimestepStrengths):
        return value
    keyframes = getattr(value, "keyframes", None)
    if keyframes is None or not all(hasattr(k, "start_percent") and hasattr(k, "strength") for k in keyframes):
        raise ValueError(f"timestep_strength: expected timestep strengths or a TIMESTEP_KEYFRAME, got {value!r}")
    if any(getattr(k, "latent_keyframes", None) is not None for k in keyframes):
        raise ValueError(
            "timestep_strength: this TIMESTEP_KEYFRAME carries latent keyframes; Stable-Pose reads per-frame "
            "strength from its frame_strength input: connect the LATENT_KEYFRAME there"
        )
    return TimestepStrengths.steps((float(k.start_percent), float(k.strength)) for k in keyframes)


class StablePoseFrameStrengths:
    """Strength per frame of a clip, from keyframes or one value per frame."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "strengths": (
                    "STRING",
                    {
                        "default": "0:1.0, 16:0.4, 31:1.0",
                        "multiline": True,
                        "tooltip": "strength keyframes 'frame:strength, ...' (negative frames count from the end) "
                        "or one strength per frame '1.0, 0.9, ...'",
                    },
                ),
                "interpolation": (list(CURVES), {"tooltip": "curve between strength keyframes; ends hold their value"}),
            }
        }

    RETURN_TYPES = (FRAME_STRENGTHS,)
    RETURN_NAMES = ("frame_strength",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Strength keyframes per frame for the frame_strength input of Apply Adapter (Stable-Pose) (multiplies "
        "strength)."
    )

    def build(self, strengths: str, interpolation: str):
        return (FrameStrengths.parse(strengths, interpolation),)


class StablePoseTimestepStrengths:
    """Strength over part of the sampling schedule, from one strength to another along a curve; chainable."""

    @classmethod
    def INPUT_TYPES(cls):
        percent = {"min": 0.0, "max": 1.0, "step": 0.001}
        strength = {"min": 0.0, "max": 10.0, "step": 0.01}
        return {
            "required": {
                "start_percent": ("FLOAT", {"default": 0.0, **percent, "tooltip": "where the segment starts"}),
                "end_percent": ("FLOAT", {"default": 1.0, **percent, "tooltip": "where the segment ends"}),
                "strength_start": ("FLOAT", {"default": 1.0, **strength, "tooltip": "strength at start_percent"}),
                "strength_end": ("FLOAT", {"default": 0.0, **strength, "tooltip": "strength at end_percent"}),
                "interpolation": (list(CURVES), {"tooltip": "curve from strength_start to strength_end"}),
            },
            "optional": {
                "previous": (TIMESTEP_STRENGTHS, {"tooltip": "earlier segments to extend (must not overlap)"}),
            },
        }

    RETURN_TYPES = (TIMESTEP_STRENGTHS,)
    RETURN_NAMES = ("timestep_strength",)
    FUNCTION = "build"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "Strength keyframes over the sampling schedule for the timestep_strength input of Apply Adapter "
        "(Stable-Pose); outside every segment the multiplier is 1."
    )

    def build(self, start_percent, end_percent, strength_start, strength_end, interpolation, previous=None):
        segment = TimestepSegment(start_percent, end_percent, strength_start, strength_end, interpolation)
        return ((previous or TimestepStrengths(())).with_segment(segment),)


NODE_CLASS_MAPPINGS = {
    "StablePoseFrameStrengths": StablePoseFrameStrengths,
    "StablePoseTimestepStrengths": StablePoseTimestepStrengths,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "StablePoseFrameStrengths": "Strength per Frame (Stable-Pose)",
    "StablePoseTimestepStrengths": "Strength over Steps (Stable-Pose)",
}
