"""Is a fitted pose humanly possible? The open stand-in for Diffusion-HPC's VPoser check (embedding norm > 30 =
implausible). Three measured terms, each 1.0 at its tolerance; the score is their root sum of squares (like an
embedding norm, several small oddities add up), and a person is plausible when the score is below 1
(``docs/body.md``):

- ``limits``: the largest fraction of a joint's human range of motion (:mod:`.limits`) the fit had to use
  (1.0 = at the limit, more = beyond). Keypoints that only a contorted body matches push a joint to its limit,
  e.g. legs facing away under a chest facing the camera need the trunk twisted to its end.
- ``fit_error``: the worst visible joint's reprojection error, as a fraction of the person's size, over
  :data:`FIT_ERROR_TOLERANCE`: keypoints no human body in any pose projects onto.
- ``proportions``: the largest ratio between a limb's length on the image and the fitted body's (both arms and
  legs, upper and lower segments, left and right), as ``|log ratio|`` over ``log`` :data:`PROPORTION_TOLERANCE`:
  a forearm drawn twice its length cannot be matched by a body with human proportions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..poses.keypoints import COCO17_NAMES
from .limits import limit_table
from .model import DOF_NAMES
from .smplify import FitResult, FitTargets, person_size

FIT_ERROR_TOLERANCE = 0.12
PROPORTION_TOLERANCE = 1.45
# (from, to) COCO-17 indices of the limb segments compared by the proportions term
LIMBS = ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14, 16))
_SLACK = 0.05  # of the person's size, added to both lengths: foreshortened limbs give no ratio from noise
CONFIDENT = 0.5  # joints judged: a detector's guesses at hidden joints (BlazePose visibility < 0.5) are not


@dataclass(frozen=True)
class Plausibility:
    """One person's verdict: ``score`` (< 1 plausible), its three terms (each 1.0 at its tolerance), the fit error
    in pixels (mean over the judged joints) and the names of the worst joints (largest error, most range used)."""

    score: float
    plausible: bool
    limits: float
    fit_error: float
    proportions: float
    fit_error_px: float
    worst_joints: tuple[str, ...]


def judge(result: FitResult, targets: FitTargets) -> list[Plausibility]:
    """The verdict for each fitted person of ``result`` against the keypoints it was fitted to (only joints of at
    least :data:`CONFIDENT` confidence are judged)."""
    size = person_size(targets.keypoints, targets.weights)
    visible = targets.confidence >= CONFIDENT
    error = (result.projected - targets.keypoints).norm(dim=-1)
    relative = torch.where(visible, error / size[:, None], torch.zeros_like(error))
    used = range_used(result.dofs)
    proportions = _proportions(result.projected, targets.keypoints, visible, size)
    verdicts = []
    for i in range(len(size)):
        terms = (
            float(used[i].max()),
            float(relative[i].max()) / FIT_ERROR_TOLERANCE,
            float(proportions[i]) / math.log(PROPORTION_TOLERANCE),
        )
        score = math.sqrt(sum(term * term for term in terms))
        worst = [COCO17_NAMES[j] for j in relative[i].argsort(descending=True)[:2].tolist() if relative[i, j] > 0]
        worst += [DOF_NAMES[d] for d in used[i].argsort(descending=True)[:1].tolist()]
        mean_px = float(error[i][visible[i]].mean()) if visible[i].any() else 0.0
        verdicts.append(Plausibility(score, score < 1.0, *terms, mean_px, tuple(worst)))
    return verdicts


def range_used(dofs: torch.Tensor) -> torch.Tensor:
    """Fraction of each joint's range of motion used, on the side the angle lies ``(N, len(DOF_NAMES))``."""
    limits = limit_table().to(dofs)
    return torch.where(dofs >= 0, dofs / limits[:, 1].clamp_min(1e-6), dofs / limits[:, 0].clamp_max(-1e-6))


def _proportions(
    projected: torch.Tensor, keypoints: torch.Tensor, visible: torch.Tensor, size: torch.Tensor
) -> torch.Tensor:
    """Largest ``|log(image length / fitted length)|`` over the limbs whose both ends are visible ``(N,)``."""
    start, end = (torch.tensor(ends, device=keypoints.device) for ends in zip(*LIMBS, strict=True))
    slack = _SLACK * size[:, None]
    seen = (keypoints[:, start] - keypoints[:, end]).norm(dim=-1) + slack
    fitted = (projected[:, start] - projected[:, end]).norm(dim=-1) + slack
    ratio = (seen / fitted).log().abs()
    return torch.where(visible[:, start] & visible[:, end], ratio, torch.zeros_like(ratio)).amax(1)
