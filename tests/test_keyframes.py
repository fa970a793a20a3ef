"""Per-frame and per-step strength math (``stablepose_core.model.strengths``)."""

import pytest
import torch

from stablepose_core.model.strengths import FrameStrengths, TimestepSegment, TimestepStrengths


def test_keyframe_spec_interpolates_between_and_holds_the_ends():
    strengths = FrameStrengths.parse("2:1.0, 4:0.0, -1:1.0", "linear")
    assert strengths.values(8).tolist() == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0, 1 / 3, 2 / 3, 1.0])
    eased = FrameStrengths.parse("0:0, 4:1", "ease_in_out").values(5).tolist()
    assert eased[0] == 0 and eased[2] == 0.5 and eased[1] < 0.25 and eased[4] == 1
    assert FrameStrengths.parse("0:1, 2:0", "hold").values(4).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_plain_list_is_one_value_per_frame():
    assert FrameStrengths.parse("1, 0.5,0.25", "linear").values(3).tolist() == [1.0, 0.5, 0.25]


def test_listed_frames_only_with_an_unlisted_strength():
    strengths = FrameStrengths(((1, 0.5), (-1, 2.0)), "hold", unlisted=0.0)
    assert strengths.values(4).tolist() == [0.0, 0.5, 0.0, 2.0]


@pytest.mark.parametrize(
    ("text", "frames", "message"),
    [
        ("1.0, 0.5", 3, "the list has 2 values but the clip has 3 frames"),
        ("0:1, 5:0", 4, "keyframe at frame 5 is outside the clip of 4 frames"),
        ("0:1, -5:0", 4, "keyframe at frame -5 is outside the clip of 4 frames"),
    ],
)
def test_strengths_that_do_not_fit_the_clip_are_explained(text, frames, message):
    with pytest.raises(ValueError, match=message):
        FrameStrengths.parse(text, "linear").values(frames)


@pytest.mark.parametrize("text", ["0:1, 0.5", "a:1", "1, x", ""])
def test_malformed_specs_are_explained(text):
    with pytest.raises(ValueError, match="frame strengths"):
        FrameStrengths.parse(text, "linear")


def test_timestep_segments_interpolate_inside_and_leave_the_rest():
    schedule = TimestepStrengths((TimestepSegment(0.2, 0.6, 1.0, 0.0, "linear"),))
    assert [schedule.at(p) for p in (0.0, 0.2, 0.4, 0.6, 0.9)] == pytest.approx([1.0, 1.0, 0.5, 0.0, 1.0])
    steps = TimestepStrengths.steps([(0.0, 1.0), (0.5, 0.25)])
    assert [steps.at(p) for p in (0.0, 0.49, 0.5, 1.0)] == [1.0, 1.0, 0.25, 0.25]


def test_overlapping_segments_and_bad_ranges_are_refused():
    first = TimestepStrengths((TimestepSegment(0.0, 0.5, 1.0, 0.0),))
    with pytest.raises(ValueError, match="overlap"):
        first.with_segment(TimestepSegment(0.4, 1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="start_percent ≤ end_percent"):
        TimestepSegment(0.7, 0.2, 1.0, 1.0)
    with pytest.raises(ValueError, match="unknown interpolation"):
        TimestepSegment(0.0, 1.0, 1.0, 1.0, "cubic")
    assert torch.is_tensor(FrameStrengths(((0, 1.0),)).values(2))
