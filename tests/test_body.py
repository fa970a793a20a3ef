"""The 3D body prior on the real Anny model: fits of the bundled photos, plausibility of real poses against edited
generation failures, back views, rendering, empty inputs.

The photos' poses and the failures edited into them (``hips``, ``forearm``, ``knee``) come from
:mod:`harness.body_samples`.
Only edits of joints the photo shows confidently are judged: the astronaut's legs are out of frame, so her knee and
forearm edits would move guesses, not body parts (the camera man's are used).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from harness.body_samples import back_view, bend_knees_forward, photo_poses, stretch_forearm, swap_legs
from stablepose_core.body.bodies import BodyBatch, FrameBodies
from stablepose_core.body.fit import fit_bodies
from stablepose_core.body.model import DOF_NAMES
from stablepose_core.body.render import render_bodies
from stablepose_core.body.smplify import MIN_KEYPOINTS
from stablepose_core.poses.keypoints import PoseKeypoints

pytestmark = pytest.mark.slow


def _two_people(photos: dict[str, PoseKeypoints]) -> PoseKeypoints:
    """The astronaut at half size on the left and the camera man at a third on the right of one 512² image."""
    near = photos["astronaut"].keypoints[0] * np.float32([0.5, 0.5, 1]) + np.float32([0, 150, 0])
    far = photos["camera"].keypoints[0] * np.float32([0.33, 0.33, 1]) + np.float32([320, 200, 0])
    return PoseKeypoints(np.stack([far, near]), 512, 512)


@pytest.fixture(scope="module")
def fitted(body_model: Any) -> dict[str, FrameBodies]:
    """Every case fitted in one batch (one optimisation: the cost of a single person several times over)."""
    photos = photo_poses()
    cases = {
        **photos,
        **{f"{name}_2d": PoseKeypoints(pose.keypoints, pose.width, pose.height) for name, pose in photos.items()},
        "astronaut_hips": swap_legs(photos["astronaut"]),
        "camera_hips": swap_legs(photos["camera"]),
        "camera_forearm": stretch_forearm(photos["camera"]),
        "camera_knee": bend_knees_forward(photos["camera"]),
        "astronaut_back": back_view(photos["astronaut"]),
        "two_people": _two_people(photos),
    }
    batch = fit_bodies(body_model, list(cases.values()))
    return {"poses": cases, **dict(zip(cases, batch.frames, strict=True))}


@pytest.mark.parametrize("photo", ["astronaut", "camera"])
def test_fitted_joints_reproject_onto_the_photo_keypoints(fitted: dict[str, Any], photo: str) -> None:
    """Within 5 % of the person's size (the diagonal of the keypoints' box) for at least 90 % of the joints BlazePose
    sees (visibility >= 0.5, MediaPipe's meaning of visible), and for half of all drawn joints (its guesses at
    hidden joints included, which the fit weighs less)."""
    pose, frame = fitted["poses"][photo], fitted[photo]
    drawn = pose.visible[0]
    points = pose.keypoints[0, drawn, :2]
    size = np.linalg.norm(points.max(0) - points.min(0))
    error = np.linalg.norm(np.array(frame.people[0].joints_2d)[drawn] - points, axis=-1) / size
    seen = pose.keypoints[0, drawn, 2] >= 0.5
    assert seen.sum() >= 8 and (error[seen] <= 0.05).mean() >= 0.9, f"{photo}: relative errors {np.round(error, 3)}"
    assert np.median(error) <= 0.05


@pytest.mark.parametrize("case", ["astronaut", "camera", "astronaut_2d", "camera_2d"])
def test_real_poses_are_plausible(fitted: dict[str, Any], case: str) -> None:
    person = fitted[case].people[0]
    assert person.plausible, person.report()


@pytest.mark.parametrize("case", ["astronaut_hips", "camera_hips", "camera_forearm", "camera_knee"])
def test_edited_generation_failures_are_implausible(fitted: dict[str, Any], case: str) -> None:
    person = fitted[case].people[0]
    assert not person.plausible, person.report()
    real = fitted[case.split("_")[0]].people[0]
    assert person.score > real.score


def test_a_skeleton_seen_from_behind_gives_a_body_facing_away(fitted: dict[str, Any]) -> None:
    assert abs(fitted["astronaut"].people[0].yaw_deg) < 45
    assert abs(fitted["astronaut_back"].people[0].yaw_deg) > 135


def test_people_are_ordered_nearest_first(fitted: dict[str, Any]) -> None:
    people = fitted["two_people"].people
    assert [p.source for p in people] == [1, 0]  # the larger astronaut is nearer
    assert people[0].translation[2] < people[1].translation[2]


def test_depth_is_positive_exactly_on_the_mask_and_near_is_bright(body_model: Any, fitted: dict[str, Any]) -> None:
    frame = fitted["two_people"]
    rendered = render_bodies(body_model, BodyBatch((frame,)), 384, 256)[0]
    assert rendered.depth.shape == rendered.silhouette.shape == (256, 384)
    assert np.array_equal(rendered.depth > 0, rendered.silhouette > 0)
    assert rendered.silhouette.sum() > 500
    near, far = (rendered.depth[rendered.person == index] for index in (0, 1))
    assert near.size and far.size and near.mean() > far.mean()
    assert rendered.depth.max() == pytest.approx(1.0) and rendered.depth[rendered.depth > 0].min() >= 0.2 - 1e-6
    assert rendered.pose.num_people == 2 and (rendered.pose.width, rendered.pose.height) == (384, 256)


def test_occluders_cut_the_body(body_model: Any, fitted: dict[str, Any]) -> None:
    batch = BodyBatch((fitted["astronaut"],))
    whole = render_bodies(body_model, batch, 128, 128)[0]
    occluder = np.zeros((1, 128, 128), np.float32)
    occluder[:, 64:] = 1.0
    cut = render_bodies(body_model, batch, 128, 128, occluder)[0]
    assert whole.silhouette[64:].sum() > 0 and cut.silhouette[64:].sum() == 0 and cut.depth[64:].max() == 0
    assert np.array_equal(cut.silhouette[:64], whole.silhouette[:64])


def test_joints_without_the_mesh_equal_the_regressed_joints(body_model: Any) -> None:
    generator = torch.Generator().manual_seed(0)
    dofs = torch.randn(3, len(DOF_NAMES), generator=generator) * 0.4
    phenotype = torch.rand(3, 6, generator=generator)
    full = body_model(dofs, phenotype).joints
    assert torch.allclose(body_model.joints(dofs, phenotype), full, atol=1e-4)


def test_nobody_and_people_without_keypoints_give_an_empty_body_and_a_report(body_model: Any) -> None:
    nobody = PoseKeypoints.empty(64, 48)
    blank = PoseKeypoints(np.zeros((1, 17, 3), np.float32), 64, 48)
    batch = fit_bodies(body_model, [nobody, blank])
    assert [len(frame.people) for frame in batch.frames] == [0, 0]
    assert batch.frames[0].report()["note"] == "nobody in the pose"
    assert batch.frames[1].report()["skipped"] == [
        {"person": 0, "reason": f"fewer than {MIN_KEYPOINTS} visible keypoints"}
    ]
    rendered = render_bodies(body_model, batch, 32, 32)
    assert all(r.depth.max() == 0 and r.silhouette.max() == 0 for r in rendered)
    assert batch.least_plausible() == [0.0, 0.0]


def test_a_body_file_round_trips(fitted: dict[str, Any]) -> None:
    batch = BodyBatch((fitted["two_people"], fitted["astronaut"]))
    assert BodyBatch.from_json(batch.to_json()) == batch


def test_the_fit_is_deterministic(body_model: Any, fitted: dict[str, Any]) -> None:
    from stablepose_core.body.smplify import FitSettings

    quick = FitSettings(camera_iterations=5, pose_iterations=10, body_iterations=3)
    pose = fitted["poses"]["camera"]
    first, second = (fit_bodies(body_model, [pose], quick).frames[0].people[0] for _ in range(2))
    assert first == second
