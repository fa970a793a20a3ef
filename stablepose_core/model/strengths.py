"""Strength over the frames of a clip and over the sampling schedule (plain math; docs/video.md).

- :class:`FrameStrengths`: one multiplier per frame, from an explicit list (one value per frame) or from
  keyframes ``frame:strength`` interpolated by a named curve (ends held), or — as Advanced-ControlNet's
  ``LATENT_KEYFRAME`` — listed frames exactly and every other frame at an ``unlisted`` strength.
- :class:`TimestepStrengths`: segments ``[start, end]`` of the schedule in ComfyUI's percent (0 = first step),
  each going from one strength to another along a curve; outside every segment the multiplier is 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

CURVES: dict[str, Callable[[float], float]] = {
    "linear": lambda t: t,
    "ease_in": lambda t: t * t,
    "ease_out": lambda t: 1.0 - (1.0 - t) ** 2,
    "ease_in_out": lambda t: t * t * (3.0 - 2.0 * t),
    "hold": lambda t: 0.0,  # keep the earlier keyframe's strength until the next one
}


MAX_STRENGTH = 10.0  # as Apply Stable-Pose's strength widget


def _check_curve(curve: str) -> None:
    if curve not in CURVES:
        raise ValueError(f"unknown interpolation {curve!r}; choose one of {', '.join(CURVES)}")


def _check_strength(what: str, value: float) -> None:
    """A strength multiplier must be a number in 0..MAX_STRENGTH: NaN, inf or one that overflows float32
    (``1e39``) would sample an all-NaN latent, a black image reported as a success."""
    if not (isinstance(value, int | float) and 0.0 <= value <= MAX_STRENGTH):
        raise ValueError(f"{what}: strength must be a number from 0 to {MAX_STRENGTH:g}, got {value}")


@dataclass(frozen=True)
class FrameStrengths:
    """Per-frame strength multipliers; frame indices may be negative (counted from the end of the clip)."""

    keyframes: tuple[tuple[int, float], ...]
    curve: str = "linear"
    explicit: bool = False  # one value per frame, in order
    unlisted: float | None = None  # when set: frames without a keyframe get this, nothing is interpolated

    def __post_init__(self) -> None:
        _check_curve(self.curve)
        if not self.keyframes:
            raise ValueError("frame strengths: give at least one value or keyframe")
        for frame, strength in self.keyframes:
            _check_strength(f"frame strengths, frame {frame}", strength)
        if self.unlisted is not None:
            _check_strength("frame strengths, unlisted frames", self.unlisted)

    @classmethod
    def parse(cls, text: str, curve: str = "linear") -> FrameStrengths:
        """``"0:1.0, 16:0.4, 31:1.0"`` (keyframes) or ``"1.0, 0.8, 0.6"`` (one value per frame)."""
        items = [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]
        keyed = bool(items) and all(":" in item for item in items)
        try:
            if keyed:
                pairs = tuple((int(f), float(s)) for f, s in (item.split(":", 1) for item in items))
            elif any(":" in item for item in items):
                raise ValueError("mixes keyframes and plain values")
            else:
                pairs = tuple(enumerate(float(item) for item in items))
        except ValueError as error:
            raise ValueError(
                f"frame strengths {text!r}: {error}; write keyframes as 'frame:strength, ...' "
                "(e.g. '0:1.0, 16:0.4, 31:1.0') or one strength per frame ('1.0, 0.8, ...')"
            ) from None
        return cls(pairs, curve, explicit=not keyed)

    def values(self, frames: int) -> torch.Tensor:
        """(frames,) float32 multipliers; raises when the list or a keyframe does not fit a clip of ``frames``."""
        if self.explicit:
            if len(self.keyframes) != frames:
                raise ValueError(
                    f"frame strengths: the list has {len(self.keyframes)} values but the clip has {frames} frames; "
                    "give one value per frame or use keyframes 'frame:strength'"
                )
            return torch.tensor([s for _, s in self.keyframes], dtype=torch.float32)
        points = sorted(self._resolved(frames))
        if self.unlisted is not None:
            out = torch.full((frames,), float(self.unlisted))
            for frame, strength in points:
                out[frame] = strength
            return out
        return torch.tensor([_interpolate(points, f, self.curve) for f in range(frames)], dtype=torch.float32)

    def _resolved(self, frames: int) -> Iterable[tuple[int, float]]:
        seen: dict[int, float] = {}
        for frame, strength in self.keyframes:
            index = frame + frames if frame < 0 else frame
            if not 0 <= index < frames:
                raise ValueError(
                    f"frame strengths: keyframe at frame {frame} is outside the clip of {frames} frames "
                    f"(frames 0..{frames - 1}, or -1..-{frames} from the end)"
                )
            seen[index] = strength
        return seen.items()


def _interpolate(points: list[tuple[float, float]], at: float, curve: str) -> float:
    """Value at ``at`` of sorted ``(position, value)`` points joined by ``curve``; ends held."""
    if at <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if at < x1:
            return y0 + (y1 - y0) * CURVES[curve]((at - x0) / (x1 - x0))
    return points[-1][1]


@dataclass(frozen=True)
class TimestepSegment:
    start: float
    end: float
    strength_start: float
    strength_end: float
    curve: str = "linear"

    def __post_init__(self) -> None:
        _check_curve(self.curve)
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError(
                f"timestep keyframe: need 0 ≤ start_percent ≤ end_percent ≤ 1, got {self.start} and {self.end}"
            )
        _check_strength("timestep keyframe, strength_start", self.strength_start)
        _check_strength("timestep keyframe, strength_end", self.strength_end)


@dataclass(frozen=True)
class TimestepStrengths:
    """Strength multiplier over the schedule: segments must not overlap; outside them it is 1."""

    segments: tuple[TimestepSegment, ...]

    def __post_init__(self) -> None:
        ordered = sorted(self.segments, key=lambda s: s.start)
        for a, b in itertools.pairwise(ordered):
            if b.start < a.end:
                raise ValueError(
                    f"timestep keyframes overlap: [{a.start}, {a.end}] and [{b.start}, {b.end}]; "
                    "give each part of the schedule one keyframe"
                )
        object.__setattr__(self, "segments", tuple(ordered))

    def with_segment(self, segment: TimestepSegment) -> TimestepStrengths:
        return TimestepStrengths((*self.segments, segment))

    def at(self, percent: float) -> float:
        """The multiplier at ``percent`` of the schedule (0 = start of sampling, 1 = end)."""
        for s in reversed(self.segments):  # on a shared boundary the later segment starts
            if s.start <= percent <= s.end:
                t = 0.0 if s.end == s.start else (percent - s.start) / (s.end - s.start)
                return s.strength_start + (s.strength_end - s.strength_start) * CURVES[s.curve](t)
        return 1.0

    @classmethod
    def steps(cls, starts_and_strengths: Iterable[tuple[float, float]]) -> TimestepStrengths:
        """A step function: each ``(start_percent, strength)`` holds until the next start (Advanced-ControlNet's
        timestep keyframes)."""
        points = sorted(starts_and_strengths)
        ends = [p for p, _ in points[1:]] + [1.0]
        return cls(tuple(TimestepSegment(p, e, s, s, "hold") for (p, s), e in zip(points, ends, strict=True)))
