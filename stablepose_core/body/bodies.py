"""Fitted bodies of an image batch (ComfyUI's ``STABLE_POSE_BODY``) and their JSON file format.

A :class:`BodyBatch` holds one :class:`FrameBodies` per image; each lists its fitted people nearest first, and
the people that could not be fitted with the reason. Everything needed to pose, place and render the body again
is stored (angles, phenotype, camera), plus the verdict, so a file is a pose-dataset record with 3D ground truth.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..poses.keypoints import COCO17_NAMES, PoseKeypoints, canvas_side, parse_json
from .model import DOF_NAMES, PHENOTYPES
from .plausibility import Plausibility

FORMAT = "stable-pose-body"
VERSION = 1
MAX_FRAMES = 100_000
MAX_PEOPLE = 100


class BodyDataError(ValueError):
    """A body file or document that is not a valid ``stable-pose-body``."""


@dataclass(frozen=True)
class FittedPerson:
    """One fitted body: Anny's angles (radians, :data:`DOF_NAMES`), phenotype (0..1, :data:`PHENOTYPES`), the camera
    (axis-angle ``rotation`` in Anny's frame, ``translation`` m, ``focal`` px), its COCO-17 ``joints_2d`` on the
    image (px), the box of the keypoints it was fitted to, the chest's ``yaw_deg`` and the plausibility verdict."""

    source: int  # index of the person in the pose it was fitted to
    rotation: tuple[float, ...]
    translation: tuple[float, ...]
    dofs: tuple[float, ...]
    phenotype: tuple[float, ...]
    focal: float
    joints_2d: tuple[tuple[float, float], ...]
    box: tuple[float, float, float, float]
    yaw_deg: float
    verdict: Plausibility

    @property
    def score(self) -> float:
        return self.verdict.score

    @property
    def plausible(self) -> bool:
        return self.verdict.plausible

    def report(self) -> dict[str, Any]:
        """The person's entry in the fit node's report."""
        verdict = self.verdict
        return {
            "person": self.source,
            "score": round(verdict.score, 3),
            "plausible": verdict.plausible,
            "yaw_deg": round(self.yaw_deg, 1),
            "fit_error_px": round(verdict.fit_error_px, 2),
            "terms": {name: round(getattr(verdict, name), 3) for name in ("limits", "fit_error", "proportions")},
            "worst_joints": list(verdict.worst_joints),
        }


@dataclass(frozen=True)
class FrameBodies:
    """The bodies of one image (``width`` × ``height`` px): ``people`` nearest first, ``skipped`` as
    ``{"person": index, "reason": text}``."""

    width: int
    height: int
    people: tuple[FittedPerson, ...] = ()
    skipped: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def pose(self, width: int | None = None, height: int | None = None) -> PoseKeypoints:
        """The fitted joints as a pose, on the image or stretched to ``width`` × ``height``."""
        width, height = width or self.width, height or self.height
        scale = np.float32([width / self.width, height / self.height, 1.0])
        joints = np.array([[(x, y, 1.0) for x, y in p.joints_2d] for p in self.people], np.float32).reshape(-1, 17, 3)
        return PoseKeypoints(joints * scale, width, height)

    def report(self) -> dict[str, Any]:
        return {
            "people": [person.report() for person in self.people],
            "skipped": list(self.skipped),
            "note": "" if self.people or self.skipped else "nobody in the pose",
        }


@dataclass(frozen=True)
class BodyBatch:
    """``STABLE_POSE_BODY``: the fitted bodies of each image of a batch."""

    frames: tuple[FrameBodies, ...]

    def least_plausible(self) -> list[float]:
        """Per image, the highest score of its people (0.0 for an image with nobody fitted)."""
        return [max((p.score for p in frame.people), default=0.0) for frame in self.frames]

    def to_json(self, indent: int | None = None) -> str:
        document = {
            "format": FORMAT,
            "version": VERSION,
            "body_model": "anny",
            "dof_names": list(DOF_NAMES),
            "phenotypes": list(PHENOTYPES),
            "joints": list(COCO17_NAMES),
            "frames": [asdict(frame) for frame in self.frames],
        }
        return json.dumps(document, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> BodyBatch:
        """Parse a body file; anything malformed raises one :class:`BodyDataError` naming the place."""
        try:
            data = parse_json(text, "body JSON")
        except ValueError as error:
            raise BodyDataError(str(error)) from error
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BodyDataError(f'not a body file: expected an object with "format": "{FORMAT}"')
        if data.get("version") != VERSION or data.get("dof_names") != list(DOF_NAMES):
            raise BodyDataError(f"unsupported body file version {data.get('version')!r} (this pack reads {VERSION})")
        frames = data.get("frames")
        if not isinstance(frames, list) or not 0 < len(frames) <= MAX_FRAMES:
            raise BodyDataError(f'"frames" must be a list of 1 to {MAX_FRAMES} frames')
        return cls(tuple(_frame(i, frame) for i, frame in enumerate(frames)))


def _frame(index: int, data: Any) -> FrameBodies:
    where = f"frame {index}"
    if not isinstance(data, dict):
        raise BodyDataError(f"{where}: must be an object")
    try:
        width, height = canvas_side("width", data.get("width")), canvas_side("height", data.get("height"))
    except ValueError as error:
        raise BodyDataError(f"{where}: {error}") from error
    people, skipped = data.get("people"), data.get("skipped", [])
    if not isinstance(people, list) or len(people) > MAX_PEOPLE:
        raise BodyDataError(f'{where}: "people" must be a list of at most {MAX_PEOPLE} bodies')
    if not isinstance(skipped, list) or len(skipped) > MAX_PEOPLE or not all(_is_skip(s) for s in skipped):
        raise BodyDataError(f'{where}: "skipped" must list {{"person": index, "reason": text}} objects')
    return FrameBodies(
        width, height, tuple(_person(f"{where}, body {i}", p) for i, p in enumerate(people)), tuple(skipped)
    )


def _is_skip(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and set(entry) == {"person", "reason"}
        and type(entry["person"]) is int
        and isinstance(entry["reason"], str)
        and len(entry["reason"]) <= 200
    )


_VECTORS = {"rotation": 3, "translation": 3, "dofs": len(DOF_NAMES), "phenotype": len(PHENOTYPES), "box": 4}
_NUMBERS = ("focal", "yaw_deg")
_VERDICT_NUMBERS = ("score", "limits", "fit_error", "proportions", "fit_error_px")


def _person(where: str, data: Any) -> FittedPerson:
    if not isinstance(data, dict):
        raise BodyDataError(f"{where}: must be an object")
    missing = sorted(({*_VECTORS, *_NUMBERS, "source", "joints_2d", "verdict"}) - set(data))
    if missing:
        raise BodyDataError(f"{where}: missing {', '.join(missing)}")
    values = {name: _numbers(where, name, data[name], size) for name, size in _VECTORS.items()}
    values |= {name: _numbers(where, name, [data[name]], 1)[0] for name in _NUMBERS}
    joints = data["joints_2d"]
    if not isinstance(joints, list) or len(joints) != len(COCO17_NAMES):
        raise BodyDataError(f"{where}: joints_2d must list {len(COCO17_NAMES)} [x, y] points")
    values["joints_2d"] = tuple(tuple(_numbers(where, "joints_2d", point, 2)) for point in joints)
    if type(data["source"]) is not int or not 0 <= data["source"] < 10_000:
        raise BodyDataError(f"{where}: source must be the index of a person")
    if not 0 < values["focal"] < 1e6 or values["translation"][2] <= 0:
        raise BodyDataError(f"{where}: the camera must have a positive focal length and the body in front of it")
    return FittedPerson(source=data["source"], verdict=_verdict(where, data["verdict"]), **values)


def _verdict(where: str, data: Any) -> Plausibility:
    if not isinstance(data, dict) or type(data.get("plausible")) is not bool:
        raise BodyDataError(f"{where}: verdict must be an object with plausible true or false")
    missing = sorted(set(_VERDICT_NUMBERS) - set(data))
    if missing:
        raise BodyDataError(f"{where}: verdict is missing {', '.join(missing)}")
    worst = data.get("worst_joints", [])
    if not isinstance(worst, list) or len(worst) > 8 or not all(isinstance(w, str) and len(w) < 40 for w in worst):
        raise BodyDataError(f"{where}: worst_joints must be a short list of joint names")
    numbers = {name: _numbers(where, name, [data[name]], 1)[0] for name in _VERDICT_NUMBERS}
    return Plausibility(plausible=data["plausible"], worst_joints=tuple(worst), **numbers)


def _numbers(where: str, name: str, value: Any, size: int) -> tuple[float, ...]:
    if (
        not isinstance(value, list)
        or len(value) != size
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise BodyDataError(f"{where}: {name} must be {size} finite number{'s' if size > 1 else ''}")
    return tuple(float(v) for v in value)
