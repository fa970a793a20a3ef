"""Human range of motion of the fitted joints, in the body model's axes (:data:`~.model.DOF_NAMES`).

Active ranges of healthy adults from Soucie et al., "Range of motion measurements: reference values and a database
for comparison studies", Haemophilia 17(3), 2011 (CDC normal joint study; hip, knee, shoulder, elbow) and the AAOS
"Joint Motion: Method of Measuring and Recording" (1965; trunk and neck), widened by a few degrees for measurement
spread. Angles are relative to Anny's rest pose (arms lowered ~45 degrees, elbows bent ~37 degrees), so the
shoulder and elbow rows are shifted by those rest angles. Left-side rows are mirrored to the right
(an axial vector mirrored in x keeps x and negates y and z). ``docs/body.md`` lists the table in words.
"""

from __future__ import annotations

import math

import torch

from .model import BALL_JOINTS, DOF_NAMES, HINGES

# (min, max) degrees per axis for the left side and the midline; x: flexion/extension, y and z as noted
_LEFT_LIMITS: dict[str, tuple[tuple[float, float], ...]] = {
    # trunk over the pelvis: x flexion 80 / extension 30, y lateral bend 35, z axial rotation 45 (AAOS)
    "spine03": ((-30, 80), (-35, 35), (-45, 45)),
    # neck: flexion 50 / extension 60, lateral bend 45, rotation 80 (AAOS)
    "neck01": ((-60, 50), (-45, 45), (-80, 80)),
    # hip: -x is flexion (up to 125), +x extension 30; +y adduction 30, -y abduction 50; z rotation 45 (Soucie)
    "upperleg01.L": ((-125, 30), (-50, 30), (-45, 45)),
    # shoulder from the lowered rest: flexion 180 / extension 60, abduction to 180, rotation 90 (Soucie)
    "upperarm01.L": ((-180, 180), (-60, 135), (-100, 100)),
}
# hinges: flexion in degrees from the rest pose; knee 0..150 (5 hyperextension), elbow 0..150 from a 37 rest
_HINGE_LIMITS: dict[str, tuple[float, float]] = {"lowerleg01": (-5, 150), "lowerarm01": (-47, 113)}


def _mirrored(limits: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    (x, (y0, y1), (z0, z1)) = limits
    return (x, (-y1, -y0), (-z1, -z0))


def limit_table() -> torch.Tensor:
    """``(len(DOF_NAMES), 2)`` radians: the lower and upper limit of every degree of freedom."""
    rows: list[tuple[float, float]] = []
    for bone in BALL_JOINTS:
        if bone.endswith(".R"):
            rows += _mirrored(_LEFT_LIMITS[bone[:-2] + ".L"])
        else:
            rows += _LEFT_LIMITS[bone]
    rows += [_HINGE_LIMITS[hinge.split(".")[0]] for hinge in HINGES]
    assert len(rows) == len(DOF_NAMES)
    return torch.tensor(rows, dtype=torch.float32) * (math.pi / 180)


def excess(dofs: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """How far each angle lies outside its range, radians, ``(..., len(DOF_NAMES))`` (0 inside)."""
    limits = limits.to(dofs)
    return torch.relu(limits[:, 0] - dofs) + torch.relu(dofs - limits[:, 1])
