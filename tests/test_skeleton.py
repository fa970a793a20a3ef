"""Skeleton rendering equals the official Stable-Pose drawing.

``tests/data/skeleton/*.png`` were drawn by the official ``ldm/data/dataset_pose.py`` (its ``hint``, with
OpenCV 4.3.0 and albumentations 1.3.0 as the official requirements pin) from the keypoints in the ``.json`` next
to them; ``palette.json`` holds seaborn's values. See ``tools/make_skeleton_references.py``.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stablepose_core.poses.keypoints import COCO17_NAMES, PoseKeypoints
from stablepose_core.poses.skeleton import LIMB_COLORS, MAX_PEOPLE, drawn_people, hls_palette, line_width, render_pose

DATA = Path(__file__).parent / "data" / "skeleton"
CASES = sorted(path.stem for path in DATA.glob("*.png"))


def load_case(name: str) -> tuple[PoseKeypoints, np.ndarray]:
    reference = np.asarray(Image.open(DATA / f"{name}.png").convert("RGB"))
    return PoseKeypoints.from_json((DATA / f"{name}.json").read_text()), reference


def test_palette_equals_seaborn():
    seaborn = json.loads((DATA / "palette.json").read_text())
    np.testing.assert_array_equal(hls_palette(16), np.array(seaborn["hls16"]))
    assert [list(color) for color in LIMB_COLORS] == seaborn["hls16_uint8"]


@pytest.mark.parametrize("name", CASES)
def test_render_equals_official_drawing(name):
    keypoints, reference = load_case(name)
    rendered = render_pose(keypoints)
    assert rendered.dtype == np.uint8 and rendered.shape == reference.shape == (512, 512, 3)
    differing = int((rendered != reference).any(-1).sum())
    assert differing == 0, f"{differing} pixels differ from the official drawing"


def test_reference_cases_cover_the_official_rules():
    assert len(CASES) >= 4
    crowd, _ = load_case("crowd_12")
    assert crowd.num_people > MAX_PEOPLE and drawn_people(crowd) == list(range(MAX_PEOPLE))
    edge, _ = load_case("edge_cases")
    assert drawn_people(edge) == [0, 1, 2]  # the near-origin person's official sum is negative


def two_point_pose(a, b, width=512, height=512, joints=(5, 7)) -> PoseKeypoints:
    points = np.zeros((1, 17, 3), np.float32)
    points[0, joints[0]] = (*a, 1.0)
    points[0, joints[1]] = (*b, 1.0)
    return PoseKeypoints(points, width, height)


def test_colours_are_rgb_in_limb_order():
    image = render_pose(two_point_pose((100, 100), (300, 100), joints=(0, 1)))  # limb 0: nose-left eye
    assert tuple(image[100, 200]) == LIMB_COLORS[0] == (219, 94, 86)
    assert image[100, 200, 0] > image[100, 200, 2]  # seaborn's first hls colour is red: R in channel 0


@pytest.mark.parametrize(
    ("size", "expected"), [((512, 512), 10), ((768, 512), 10), ((1024, 1024), 20), ((256, 256), 5), ((40, 40), 1)]
)
def test_line_width_rule(size, expected):
    assert line_width(*size) == expected


def test_line_width_scales_in_the_image():
    for side in (512, 1024):
        pose = two_point_pose((0.1 * side, 0.5 * side), (0.9 * side, 0.5 * side), side, side)
        column = render_pose(pose)[:, side // 2].any(-1)
        assert column.sum() in (line_width(side, side), line_width(side, side) + 1)


def test_other_sizes_stretch_or_keep_aspect():
    keypoints, _ = load_case("two_people")
    big = render_pose(keypoints, 1024, 768)
    assert big.shape == (768, 1024, 3)
    np.testing.assert_array_equal(big, render_pose(keypoints.scale_to(1024, 768)))
    assert render_pose(keypoints, width=256).shape == (256, 256, 3)
    assert render_pose(keypoints, height=300).shape == (300, 300, 3)


def test_absent_and_off_canvas_joints_are_not_drawn():
    assert not render_pose(PoseKeypoints.empty(64, 48)).any()
    assert render_pose(PoseKeypoints.empty(64, 48)).shape == (48, 64, 3)
    assert not render_pose(two_point_pose((100, 100), (600, 100))).any()  # elbow off the canvas
    low = two_point_pose((100, 100), (300, 100))
    low.keypoints[0, 7, 2] = 0.02
    assert not render_pose(PoseKeypoints(low.keypoints, 512, 512)).any()


def test_flip_keeps_side_colours():
    left_upper_arm = COCO17_NAMES.index("left_shoulder"), COCO17_NAMES.index("left_elbow")
    pose = two_point_pose((350, 100), (350, 300), joints=left_upper_arm)  # limb 6: (5, 7)
    image = render_pose(pose)
    flipped = render_pose(pose.flip_horizontal())
    assert tuple(image[200, 350]) == LIMB_COLORS[6]
    assert tuple(flipped[200, 511 - 350]) == LIMB_COLORS[7]  # now the right upper arm, limb (6, 8)
    assert not flipped[:, 300:].any()
