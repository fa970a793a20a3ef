"""``python -m stablepose_core.evaluate`` against hostile inputs: one ``error:`` line (exit 2) for each, never a
traceback; no input read outside ``--images``; ``--out`` never overwrites an input or an earlier run."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from stablepose_core.evaluate.cli import main

from .corpus import png_header_only

pytest.importorskip("pycocotools")

PERSON = (np.array([[100 + 4 * j, 50 + 10 * j, 2] for j in range(17)], np.float64)).ravel().tolist()
TRUTH = {
    "images": [{"id": 1, "file_name": "a.png", "width": 256, "height": 256}],
    "annotations": [{"image_id": 1, "keypoints": PERSON}],
}
DETECTIONS = [{"image_id": 1, "keypoints": [v if i % 3 < 2 else 0.9 for i, v in enumerate(PERSON)], "score": 0.9}]


def run(tmp_path: Path, truth: object = TRUTH, detections: object = DETECTIONS, out: Path | None = None) -> int:
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    (tmp_path / "det.json").write_text(json.dumps(detections))
    args = ["--annotations", tmp_path / "gt.json", "--detections", tmp_path / "det.json"]
    return main([str(arg) for arg in [*args, "--out", out or tmp_path / "out"]])


def changed(path: tuple[str, ...], value: object, base: object = TRUTH) -> object:
    data = copy.deepcopy(base)
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    target[last] = value
    return data


@pytest.mark.parametrize(
    ("truth", "message"),
    [
        (changed(("images", 0), 5), r"images\[0\] must be an object"),
        (changed(("images", 0, "id"), [1]), r"images\[0\]: id must be a whole number, got \[1\]"),
        (changed(("annotations", 0), PERSON), r"annotations\[0\] must be an object with an image_id"),
        (changed(("annotations", 0, "keypoints"), ["x"] * 51), r"annotations\[0\] needs .* \(finite numbers\)"),
        (changed(("annotations", 0, "keypoints", 4), float("nan")), r"annotations\[0\] needs .* \(finite numbers\)"),
        (changed(("images", 0, "width"), 0), r"images\[0\]: width must be a whole number of pixels in 1\.\.8192"),
        (changed(("images", 0, "height"), "256"), r"images\[0\]: height must be a whole number of pixels"),
        (changed(("images",), TRUTH["images"] * 2), r"images\[1\]: id 1 appears twice"),
        (changed(("images", 0, "file_name"), "../x.png"), r"file_name must be a relative name inside --images"),
        (changed(("images", 0, "file_name"), "/etc/passwd"), r"file_name must be a relative name inside --images"),
        (changed(("images", 0, "file_name"), "C:\\x.png"), r"file_name must be a relative name inside --images"),
        (changed(("annotations",), TRUTH["annotations"] * 501), r"image 1 has 501 annotations; at most 500 people"),
        (changed(("annotations",), {"a": 1}), r"'annotations' must be a list"),
    ],
)
def test_bad_ground_truth_is_one_error_line(tmp_path, capsys, truth, message):
    assert run(tmp_path, truth) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --annotations") and len(error.strip().splitlines()) == 1
    assert re.search(message, error), error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("detections", "message"),
    [
        (changed((0, "keypoints"), ["x"] * 51, DETECTIONS), "finite numbers"),
        (changed((0, "keypoints", 0), float("nan"), DETECTIONS), "finite numbers"),
        (changed((0, "score"), "high", DETECTIONS), "and score 'high'"),
        (changed((0, "score"), 10**400, DETECTIONS), "numeric 'score'"),
        (changed((0, "image_id"), [1], DETECTIONS), r"image_id \[1\] is not in the ground truth"),
        (DETECTIONS * 501, "image 1 has 501 detections; at most 500 people"),
    ],
)
def test_bad_detections_are_one_error_line(tmp_path, capsys, detections, message):
    assert run(tmp_path, detections=detections) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: --detections") and re.search(message, error), error
    assert len(error.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_deeply_nested_json_is_one_error_line(tmp_path, capsys):
    (tmp_path / "gt.json").write_text("[" * 100_000 + "]" * 100_000)
    assert main(["--annotations", str(tmp_path / "gt.json"), "--detections", "x", "--out", str(tmp_path / "o")]) == 2
    assert "nested too deeply" in capsys.readouterr().err


def test_a_decompression_bomb_is_one_error_line(tmp_path, capsys):
    """A 30000 × 30000 PNG of a few hundred bytes: PIL refuses it, the CLI says which file."""
    images = tmp_path / "images"
    images.mkdir()
    png_header_only(images / "a.png", 30_000, 30_000)
    (tmp_path / "gt.json").write_text(json.dumps(TRUTH))
    args = ["--annotations", tmp_path / "gt.json", "--images", images, "--out", tmp_path / "out"]
    assert main([*map(str, args), "--backend", "blazepose"]) == 2
    error = capsys.readouterr().err
    assert "a.png: cannot read the image" in error and "decompression bomb" in error
    assert not (tmp_path / "out").exists()


def test_file_names_leading_outside_images_are_not_read(tmp_path, capsys):
    """Even when the file exists: ``../secret.png`` beside the images folder is refused, not scored."""
    (tmp_path / "images").mkdir()
    png_header_only(tmp_path / "secret.png", 8, 8)
    truth = changed(("images", 0, "file_name"), "../secret.png")
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    args = ["--annotations", tmp_path / "gt.json", "--images", tmp_path / "images", "--out", tmp_path / "out"]
    assert main([*map(str, args), "--backend", "blazepose"]) == 2
    assert "file_name must be a relative name inside --images" in capsys.readouterr().err


def test_out_holding_an_input_or_being_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text("the user's own metrics")
    assert run(tmp_path, out=tmp_path) == 2
    assert "holds the --annotations input" in capsys.readouterr().err
    assert json.loads((tmp_path / "gt.json").read_text()) == TRUTH
    assert (tmp_path / "metrics.json").read_text() == "the user's own metrics"
    (tmp_path / "a_file").write_text("kept")
    assert run(tmp_path, out=tmp_path / "a_file") == 2
    assert "is a file; give a folder" in capsys.readouterr().err
    assert (tmp_path / "a_file").read_text() == "kept"


def test_a_second_run_into_the_same_out_changes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert run(tmp_path, out=out) == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert sorted(before) == ["detections.json", "metrics.json"]
    assert run(tmp_path, detections=[], out=out) == 2
    assert "already holds detections.json and metrics.json of an earlier run" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before


def test_results_are_written_as_one_set(tmp_path):
    """When the second file cannot be written (here a link already at its name), the first is taken back."""
    from stablepose_core.evaluate.cli import write_results

    (tmp_path / "metrics.json").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        write_results(tmp_path, {"detections.json": "[]", "metrics.json": "{}"})
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"] and not (tmp_path / "nowhere").exists()
