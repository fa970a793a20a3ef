"""The sample inputs the bundled workflows load, drawn or taken from scikit-image, and how they are stored.

- ``stable_pose_astronaut.jpg``: scikit-image's astronaut photo (NASA, public domain), 512 × 512;
- ``stable_pose_example_pose.png``: a dancing person drawn by the pack's skeleton renderer, 512 × 768;
- ``stable_pose_pose_sequence.webp``: four frames of a jumping jack, animated lossless WebP, 512 × 768.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

from stablepose_core.poses.keyframes import clip_from_keyframes, keyframes_document
from stablepose_core.poses.keypoints import COCO17_NAMES, PoseKeypoints
from stablepose_core.poses.skeleton import render_pose

PHOTO = "stable_pose_astronaut.jpg"
EXAMPLE_POSE = "stable_pose_example_pose.png"
POSE_SEQUENCE = "stable_pose_pose_sequence.webp"
SAMPLE_NAMES = (PHOTO, EXAMPLE_POSE, POSE_SEQUENCE)
POSE_SIZE = (512, 768)
SEQUENCE_FRAME_MS = 250
KEY_POSE_FRAMES = 16
THUMBNAIL_SIDE = 768
JPEG_TOLERANCE = 3.0  # mean absolute error (of 255) a quality-90 JPEG of the photo stays within


def _figure(
    arms: tuple[float, float], elbows: tuple[float, float], legs: tuple[float, float], knees: tuple[float, float]
) -> PoseKeypoints:
    """A front-facing person on a 512 × 768 canvas. Angles in degrees from straight down, positive away from the
    body; pairs are (the person's left, right); the person's left is on the image's right."""
    centre = POSE_SIZE[0] / 2
    joints = {
        "nose": (centre, 190),
        "left_eye": (centre + 11, 178),
        "right_eye": (centre - 11, 178),
        "left_ear": (centre + 25, 186),
        "right_ear": (centre - 25, 186),
    }
    for side, sign, index in (("left", 1, 0), ("right", -1, 1)):
        shoulder, hip = (centre + 60 * sign, 265), (centre + 40 * sign, 455)
        elbow = _limb(shoulder, arms[index], 115, sign)
        knee = _limb(hip, legs[index], 130, sign)
        joints |= {
            f"{side}_shoulder": shoulder,
            f"{side}_elbow": elbow,
            f"{side}_wrist": _limb(elbow, elbows[index], 105, sign),
            f"{side}_hip": hip,
            f"{side}_knee": knee,
            f"{side}_ankle": _limb(knee, knees[index], 130, sign),
        }
    points = np.array([[*joints[name], 1.0] for name in COCO17_NAMES], np.float32)
    return PoseKeypoints(points[None], *POSE_SIZE)


def _limb(start: tuple[float, float], angle: float, length: float, sign: int) -> tuple[float, float]:
    radians = math.radians(angle)
    return start[0] + sign * length * math.sin(radians), start[1] + length * math.cos(radians)


def example_pose_keypoints() -> PoseKeypoints:
    """A dancing person: the left arm raised, the right arm out with the forearm up, the right leg stepping out."""
    return _figure(arms=(150, 95), elbows=(170, 150), legs=(8, 28), knees=(4, 12))


def example_pose() -> np.ndarray:
    """:func:`example_pose_keypoints` drawn as a Stable-Pose pose image."""
    return render_pose(example_pose_keypoints())


def pose_sequence() -> list[np.ndarray]:
    """A jumping jack: arms down, halfway, up, halfway; legs apart as the arms rise (frames 1 and 3 match)."""
    steps = [(15, 4), (90, 12), (165, 20), (90, 12)]
    return [render_pose(_figure((arm, arm), (arm, arm), (leg, leg), (leg, leg))) for arm, leg in steps]


def key_poses_keyframes() -> dict[str, Any]:
    """Edit Poses pose keyframes: a jumping jack, arms down -> up -> down over :data:`KEY_POSE_FRAMES` frames."""
    keys = {0: (15, 4), 7: (165, 20), 15: (15, 4)}
    figures = {frame: _figure((arm, arm), (arm, arm), (leg, leg), (leg, leg)) for frame, (arm, leg) in keys.items()}
    return keyframes_document(
        {frame: np.round(figure.keypoints.astype(np.float64), 2) for frame, figure in figures.items()},
        KEY_POSE_FRAMES,
        *POSE_SIZE,
        "ease_in_out",
    )


def key_poses_clip() -> list[np.ndarray]:
    """Every third frame of the keyframes' clip, drawn."""
    clip = clip_from_keyframes(key_poses_keyframes())
    return [render_pose(pose) for pose in clip.poses()[::3]]


@dataclass(frozen=True)
class SampleImage:
    """A sample input: RGB frames and how they are stored (JPEG for the photo, else lossless)."""

    name: str
    frames: tuple[np.ndarray, ...]

    @property
    def lossless(self) -> bool:
        return not self.name.endswith(".jpg")

    def encode(self) -> bytes:
        buffer = io.BytesIO()
        first, *rest = (Image.fromarray(frame) for frame in self.frames)
        if not self.lossless:
            first.save(buffer, format="JPEG", quality=90, optimize=True)
        elif rest:
            first.save(
                buffer,
                format="WEBP",
                save_all=True,
                append_images=rest,
                duration=SEQUENCE_FRAME_MS,
                loop=0,
                lossless=True,
                quality=100,
                method=6,
            )
        else:
            first.save(buffer, format="PNG", optimize=True)
        return buffer.getvalue()

    def matches(self, path: Path) -> bool:
        """Whether ``path`` holds these frames: exactly, or for the JPEG within its compression error."""
        if not path.is_file():
            return False
        with Image.open(path) as image:
            stored = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]
        if [frame.shape for frame in stored] != [frame.shape for frame in self.frames]:
            return False
        errors = [np.abs(a.astype(np.int16) - b).mean() for a, b in zip(stored, self.frames, strict=True)]
        return max(errors) <= (0 if self.lossless else JPEG_TOLERANCE)


def sample_inputs() -> list[SampleImage]:
    """The sample images the workflows load."""
    from skimage import data

    return [
        SampleImage(PHOTO, (data.astronaut(),)),
        SampleImage(EXAMPLE_POSE, (example_pose(),)),
        SampleImage(POSE_SEQUENCE, tuple(pose_sequence())),
    ]


def pixels(images: Any) -> np.ndarray:
    """The first image of a ComfyUI IMAGE batch as uint8 RGB."""
    return (images[0].clamp(0, 1) * 255).round().byte().numpy()


def thumbnail(*panels: np.ndarray) -> np.ndarray:
    """Panels side by side, scaled down to at most THUMBNAIL_SIDE px."""
    strip = Image.fromarray(np.concatenate(panels, axis=1))
    strip.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(strip)
