"""How well an image follows its target pose: people matched one-to-one by OKS, scored per person and joint.

The score of an image is the mean OKS (:mod:`.oks`) over the target's people, each matched to at most one detected
person; a target person nobody matches scores 0, so an image with nobody in it scores 0. ``count_error`` is
``|people found - people in the target|``, the per-image term of the paper's people count error (PCE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..poses.keypoints import COCO17_NAMES, PoseKeypoints
from .oks import joint_similarity, match_people, oks_matrix

# People per image (target and detected each): the similarity of every pair is computed (targets × detected × 17).
MAX_PEOPLE_PER_IMAGE = 500


@dataclass(frozen=True)
class JointScore:
    """A labelled target joint: pixel distance to the matched person's joint (None: absent) and its similarity."""

    name: str
    error_px: float | None
    similarity: float


@dataclass(frozen=True)
class PersonScore:
    """A target person, the detected person matched to it (None: nobody) and their OKS."""

    target: int
    detected: int | None
    oks: float
    joints: tuple[JointScore, ...]


@dataclass(frozen=True)
class ImageScore:
    oks: float
    people_target: int
    people_found: int
    people: tuple[PersonScore, ...]
    unmatched_detected: tuple[int, ...]

    @property
    def count_error(self) -> int:
        return abs(self.people_found - self.people_target)

    def to_dict(self) -> dict[str, Any]:
        """The JSON report entry: ``oks``, ``people_target``, ``people_found``, ``count_error``, per-person detail."""
        return {
            "oks": self.oks,
            "people_target": self.people_target,
            "people_found": self.people_found,
            "count_error": self.count_error,
            "people": [
                {
                    "target": person.target,
                    "detected": person.detected,
                    "oks": person.oks,
                    "joints": {
                        joint.name: {"error_px": joint.error_px, "similarity": joint.similarity}
                        for joint in person.joints
                    },
                }
                for person in self.people
            ],
            "unmatched_detected": list(self.unmatched_detected),
        }


def people_with_joints(pose: PoseKeypoints) -> list[int]:
    """Indices of the people with at least one visible joint (the others are not drawn, so not a pose)."""
    return [int(i) for i in np.flatnonzero(pose.visible.any(axis=1))]


def score_image(target: PoseKeypoints, detected: PoseKeypoints) -> ImageScore:
    """Score the people ``detected`` in an image against the ``target`` pose (same canvas size)."""
    if (target.width, target.height) != (detected.width, detected.height):
        raise ValueError(
            f"target canvas {target.width}x{target.height} differs from the detected {detected.width}x"
            f"{detected.height}: scale the target onto the image first (PoseKeypoints.scale_to)"
        )
    for name, pose in (("target", target), ("detected", detected)):
        if pose.num_people > MAX_PEOPLE_PER_IMAGE:
            raise ValueError(
                f"the {name} pose has {pose.num_people} people; scoring compares every target with every detected "
                f"person, so at most {MAX_PEOPLE_PER_IMAGE} per image are scored"
            )
    targets, found = people_with_joints(target), people_with_joints(detected)
    if not targets:
        raise ValueError("the target pose has no person with a visible joint: give a pose with at least one person")
    target_visible, detected_visible = target.visible, detected.visible  # once: each call computes every person
    similarity = joint_similarity(
        target.keypoints[targets], target_visible[targets], detected.keypoints[found], detected_visible[found]
    )
    oks = oks_matrix(similarity)
    partner = dict(match_people(oks))
    people = []
    for row, index in enumerate(targets):
        column = partner.get(row)
        joints = []
        for joint in np.flatnonzero(target_visible[index]):
            error = None
            if column is not None and detected_visible[found[column], joint]:
                offset = detected.keypoints[found[column], joint, :2] - target.keypoints[index, joint, :2]
                error = float(np.hypot(*offset))
            value = 0.0 if column is None else float(similarity[row, column, joint])
            joints.append(JointScore(COCO17_NAMES[joint], error, value))
        person_oks = 0.0 if column is None else float(oks[row, column])
        people.append(PersonScore(index, None if column is None else found[column], person_oks, tuple(joints)))
    matched = {found[column] for column in partner.values()}
    return ImageScore(
        oks=float(np.mean([person.oks for person in people])),
        people_target=len(targets),
        people_found=len(found),
        people=tuple(people),
        unmatched_detected=tuple(index for index in found if index not in matched),
    )
