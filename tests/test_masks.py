"""Pose masks: schedules, thresholds, float roundoff, empty poses, non-square sizes."""

import pytest
import torch

from harness.reference_weights import sample_pose_image
from stablepose_core.model.masks import (
    SCHEDULES,
    MaskSettings,
    pmsa_masks,
    pose_masks,
    training_loss_mask,
)


@pytest.fixture(scope="module")
def pose():
    return sample_pose_image(384, 640)  # non-square: latent 48×80


def test_evaluation_schedule_masks_cond_rows_coarse_to_fine_and_leaves_uncond_unmasked(pose):
    batch = pose.repeat(3, 1, 1, 1)
    masks = pmsa_masks(batch, torch.tensor([True, False, False]), MaskSettings())
    coarse, fine = pose_masks(pose, (23, 13), 3.0, -0.99)[:, 0]
    assert masks.shape == (2, 3, 48, 80)
    assert bool(masks[:, 0].all())
    assert torch.equal(masks[0, 1], coarse) and torch.equal(masks[1, 2], fine)
    assert coarse.sum() >= fine.sum() > 0 and bool((fine <= coarse).all())


def test_earlier_schedule_names_are_todays_schedules(pose):
    assert [MaskSettings(name).schedule for name in ("released", "paper", "released_train")] == [
        "evaluation",
        "evaluation",
        "training",
    ]
    assert MaskSettings.for_schedule("training") == MaskSettings.for_schedule("training")
    with pytest.raises(ValueError, match="choose one of evaluation, training, unmasked"):
        MaskSettings("relased")


def test_training_schedule_masks_every_row_and_its_coarse_layer_covers_the_frame(pose):
    masks = pmsa_masks(pose.repeat(2, 1, 1, 1), torch.tensor([True, False]), MaskSettings.for_schedule("training"))
    assert bool(masks[0].all()), "k=23 blur of the -1 background is > -1 after roundoff"
    assert not bool(masks[1].all()) and torch.equal(masks[1, 0], masks[1, 1])


def test_robust_threshold_ignores_roundoff(pose):
    robust = pose_masks(pose, (23,), 3.0, -1.0, exact_roundoff=False)[0, 0]
    assert not bool(robust.all()), "the shifted comparison sees an exactly-zero background"
    exact = pose_masks(pose, (23,), 3.0, -1.0, exact_roundoff=True)[0, 0]
    assert bool(exact.all())


def test_threshold_and_kernel_widen_or_narrow_the_mask(pose):
    tight = pose_masks(pose, (13,), 3.0, 0.5)[0, 0].sum()
    default = pose_masks(pose, (13,), 3.0, -0.99)[0, 0].sum()
    wide = pose_masks(pose, (41,), 9.0, -0.99)[0, 0].sum()
    assert tight < default < wide


def test_unmasked_schedule_is_all_ones(pose):
    masks = pmsa_masks(pose, torch.tensor([False]), MaskSettings("unmasked"))
    assert bool(masks.all())


def test_empty_pose_row_is_unmasked_and_others_unaffected(pose):
    batch = torch.cat([pose, -torch.ones_like(pose)])
    masks = pmsa_masks(batch, torch.tensor([False, False]), MaskSettings())
    assert bool(masks[:, 1].all())
    assert not bool(masks[:, 0].all())


def test_training_loss_mask_is_the_fine_support(pose):
    loss_mask = training_loss_mask(pose)
    assert loss_mask.shape == (1, 1, 48, 80) and loss_mask.dtype == torch.float32
    fine = pose_masks(pose, (13,), 3.0, -1.0, exact_roundoff=True)[0]
    assert torch.equal(loss_mask[:, 0].bool(), fine)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "nope"}, "unknown mask schedule"),
        ({"kernels": (23,)}, "at least two odd"),
        ({"kernels": (22, 13)}, "at least two odd"),
        ({"sigma": 0.0}, "sigma"),
    ],
)
def test_invalid_settings_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MaskSettings(**kwargs)


def test_bad_pose_image_shapes_are_explained():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        pmsa_masks(torch.zeros(1, 4, 64, 64), torch.tensor([False]), MaskSettings())
    with pytest.raises(ValueError, match="multiple of 8"):
        pmsa_masks(torch.zeros(1, 3, 60, 64), torch.tensor([False]), MaskSettings())


def test_schedules_listed():
    assert SCHEDULES == ("evaluation", "training", "unmasked")
