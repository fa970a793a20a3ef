"""Pose images and mask settings from a graph: non-finite values, odd channel counts, blur kernels larger than
the image and the blur cache's memory (issue 16, items 1, 2, 7 and 8)."""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn.functional as F

from stablepose_core.model.masks import BLUR_CACHE_BYTES, MaskSettings, gaussian_kernel1d, pose_masks
from stablepose_core.poses.image import rgb_pose_images


def live_tensor_bytes() -> int:
    return sum(o.nbytes for o in gc.get_objects() if issubclass(type(o), torch.Tensor) and not o.is_meta)


def test_blur_cache_is_bounded_by_bytes():
    """20 image widths of ~2k px make 20 blur matrices of ~17 MiB each; the cache keeps at most its budget."""
    gc.collect()
    before = live_tensor_bytes()
    for step in range(20):
        pose = -torch.ones(1, 3, 8, 2048 + 8 * step)
        pose[..., 4, 100] = 1.0
        pose_masks(pose, (13, 5), 3.0, -0.99)
    gc.collect()
    kept = live_tensor_bytes() - before
    assert kept <= BLUR_CACHE_BYTES, f"blur matrices kept {kept / 2**20:.0f} MiB"


@pytest.mark.parametrize(("kernel", "size"), [(65, 16), (255, 16), (35, 16), (33, 16)])
def test_kernels_reaching_past_the_image_are_refused(kernel, size):
    """k // 2 >= size: past 2 sizes the index went negative; between 1 and 2 it read wrapped-around pixels."""
    pose = -torch.ones(1, 3, size, size)
    for exact in (False, True):
        with pytest.raises(ValueError, match=rf"mask kernel {kernel} is too large for a {size}×{size} px pose"):
            pose_masks(pose, (kernel, 3), 3.0, -0.99, exact_roundoff=exact)


def test_the_largest_allowed_kernel_blurs_as_reflect_padding_does():
    """k // 2 = size - 1 is torchvision's limit; the matrix blur then equals a reflect-padded convolution."""
    torch.manual_seed(0)
    pose = torch.rand(1, 3, 16, 24) * 2 - 1
    kernel = 31
    by_kernel = pose_masks(pose, (kernel, 3), 3.0, 0.2)
    k1 = gaussian_kernel1d(kernel, 3.0)
    weights = (k1[:, None] * k1[None, :]).expand(3, 1, kernel, kernel)
    blurred = F.conv2d(F.pad(pose + 1.0, (15, 15, 15, 15), mode="reflect"), weights, groups=3).amax(1, keepdim=True)
    expected = F.max_pool2d(blurred, 8, ceil_mode=True)[:, 0] > 1.2
    assert torch.equal(by_kernel[0], expected)


@pytest.mark.parametrize(
    ("field", "value"), [("sigma", float("nan")), ("sigma", float("inf")), ("threshold", float("nan"))]
)
def test_non_finite_mask_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=rf"mask {field} must be a finite number"):
        MaskSettings(**{field: value})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_pose_pixels_are_refused(bad):
    image = torch.zeros(2, 16, 16, 3)
    image[1, 3, 4, 0] = bad
    with pytest.raises(ValueError, match=r"pose_image has 1 NaN or infinite pixel value\(s\)"):
        rgb_pose_images(image)


def test_rgba_and_grey_pose_images_become_rgb():
    rgb = torch.rand(2, 16, 24, 3)
    rgba = torch.cat([rgb, torch.rand(2, 16, 24, 1)], dim=-1)
    assert torch.equal(rgb_pose_images(rgba), rgb)
    grey = torch.rand(2, 16, 24, 1)
    assert torch.equal(rgb_pose_images(grey), grey.repeat(1, 1, 1, 3))
    assert torch.equal(rgb_pose_images(rgb), rgb)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.zeros(0, 16, 16, 3), r"pose_image is empty: 0 image\(s\)"),
        (torch.zeros(1, 16, 16, 2), "pose_image has 2 channels"),
        (torch.zeros(16, 16, 3), r"\(batch, height, width, channels\), got \(16, 16, 3\)"),
    ],
)
def test_unusable_pose_image_shapes_are_named(image, message):
    with pytest.raises(ValueError, match=message):
        rgb_pose_images(image)
