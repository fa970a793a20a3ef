"""The released data augmentation (official ``ldm/data/dataset_pose.py``), moving keypoints with the image.

Training: horizontal flip p 0.2 (left/right joints swapped, which the release did not do), rotation up to ±90°
p 0.1 (reflected border), shortest side to the training size (area interpolation) + random square crop, one
of hue/saturation/value or RGB shift p 0.4, brightness/contrast p 0.2, all with albumentations' defaults of
the released version (1.3.0). Without augmentation: the same resize and a centre crop. Joints leaving the
image are dropped (``remove_invisible``); the skeleton is drawn afterwards by the inference renderer.
Every random choice comes from the given seed, so a sample is reproducible from (seed, epoch, index).
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from stablepose_core.poses.keypoints import PoseKeypoints

FLIP_P = 0.2


def build_pipeline(size: int, augment: bool) -> A.Compose:
    """Everything after the flip, as an albumentations pipeline carrying (x, y) keypoints with an id each."""
    resize = A.SmallestMaxSize(max_size=size, interpolation=cv2.INTER_AREA)
    if augment:
        transforms = [
            A.Rotate(limit=90, interpolation=cv2.INTER_LINEAR, border_mode=cv2.BORDER_REFLECT_101, p=0.1),
            resize,
            A.RandomCrop(height=size, width=size),
            A.OneOf([A.HueSaturationValue(p=0.5), A.RGBShift(p=0.5)], p=0.4),
            A.RandomBrightnessContrast(p=0.2),
        ]
    else:
        transforms = [resize, A.CenterCrop(height=size, width=size)]
    keypoints = A.KeypointParams(format="xy", label_fields=["joint_ids"], remove_invisible=True)
    return A.Compose(transforms, keypoint_params=keypoints)


def augment_sample(
    image: np.ndarray, pose: PoseKeypoints, pipeline: A.Compose, rng: np.random.Generator, augment: bool
) -> tuple[np.ndarray, PoseKeypoints]:
    """(H, W, 3) uint8 image and its keypoints -> the ``size`` × ``size`` training crop and moved keypoints.

    Only present joints (:attr:`PoseKeypoints.visible`) travel through the pipeline; they keep their
    confidence, and every other joint becomes (0, 0, 0).
    """
    if augment and rng.random() < FLIP_P:
        image = np.ascontiguousarray(image[:, ::-1])
        pose = pose.flip_horizontal()
    visible = pose.visible
    people, joints = np.nonzero(visible)
    ids = people * visible.shape[1] + joints
    pipeline.set_random_seed(int(rng.integers(2**31)))
    out = pipeline(image=image, keypoints=pose.keypoints[people, joints, :2], joint_ids=ids)
    size = out["image"].shape[0]
    moved = np.zeros_like(pose.keypoints)
    kept = np.asarray(out["joint_ids"], dtype=np.int64)
    if kept.size:
        p, j = np.divmod(kept, visible.shape[1])
        moved[p, j, :2] = np.asarray(out["keypoints"], dtype=np.float32).reshape(-1, 2)
        moved[p, j, 2] = pose.keypoints[p, j, 2]
    return out["image"], PoseKeypoints(moved, size, size)
