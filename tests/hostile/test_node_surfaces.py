"""The pack's new surfaces in a real headless ComfyUI against hostile inputs: the editor's interpolate route served
by aiohttp, strengths and masks through an API prompt, the pose-file nodes, the sample inputs copied at load."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from pathlib import Path

import pytest

from tests.test_pose_sequences import person_at, sequence_of
from tests.test_stable_pose_nodes import apply_node, base_prompt, pose_files, sampler  # noqa: F401 (a fixture)
from tools.workflow_samples import SAMPLE_NAMES

from .test_sequence_inputs import keyframes

ROUTE = "/stable_pose/interpolate"
_SEEDS = itertools.count(7000)  # apart from other modules' seeds: ComfyUI's cache must not answer a sampler here


def serve(comfy_host, scenario):
    """Run ``scenario(client)`` against the pack's routes served by a real aiohttp server on this event loop."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    async def main():
        app = web.Application()
        app.add_routes(comfy_host.server.routes)
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


def test_interpolate_route_refuses_too_much_at_once_and_keeps_serving_while_it_works(comfy_host):
    """While a large allowed clip (20,000 frames) is interpolated, the server answers other requests, and a
    request asking too much (the issue's 3 KB body: 4 people × 100,000 frames) gets its 400 without waiting.
    Before, the work ran on the event loop: every request waited for it."""

    async def scenario(client):
        heavy = asyncio.ensure_future(client.post(ROUTE, data=json.dumps(keyframes(20_000, 1))))
        await asyncio.sleep(0.3)  # the heavy request is being worked on
        spec = await client.get("/stable_pose/skeleton_spec?width=64&height=64")
        refused = await client.post(ROUTE, data=json.dumps(keyframes(100_000, 4)))
        answered_meanwhile = not heavy.done()
        error = (await refused.json())["error"]
        done = await heavy
        return spec.status, refused.status, error, answered_meanwhile, done.status, len((await done.json())["frames"])

    spec, refused, error, answered_meanwhile, status, frames = serve(comfy_host, scenario)
    assert (spec, refused, status, frames) == (200, 400, 200, 20_000)
    assert "400000 poses, more than the 50000 one clip may hold" in error
    assert answered_meanwhile, "the spec and the refusal came while the large clip was still being made"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "the keyframe document is nested too deeply"),
        ("{broken", "the keyframe document is not valid JSON"),
        (json.dumps(keyframes(10, 1, last=20)), "key frame numbers must lie in 0..9"),
    ],
)
def test_interpolate_route_answers_bad_bodies_with_400(comfy_host, body, message):
    async def scenario(client):
        response = await client.post(ROUTE, data=body)
        return response.status, (await response.json())["error"]

    status, error = serve(comfy_host, scenario)
    assert status == 400 and message in error


def test_interpolate_node_refuses_a_crowd_over_many_frames(comfy_host):
    keys = sequence_of([person_at(100, 100)] * 5000, [person_at(200, 100)] * 5000).to_pose_keypoint()
    with pytest.raises(ValueError, match="10000 frames × 5000 people = 50000000 poses"):
        comfy_host.node_class("StablePoseInterpolate")().run(keys, 10_000, "", "linear")


# --- no NaN reaches the sampler --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra_nodes", "apply_inputs", "message"),
    [
        (
            {"mask": {"class_type": "SolidMask", "inputs": {"value": float("nan"), "width": 64, "height": 64}}},
            {"mask": ["mask", 0]},
            "the mask has 4096 NaN or infinite value(s)",
        ),
        (
            {
                "fs": {
                    "class_type": "StablePoseFrameStrengths",
                    "inputs": {"strengths": "0:1e39", "interpolation": "linear"},
                }
            },
            {"frame_strength": ["fs", 0]},
            "frame strengths, frame 0: strength must be a number from 0 to 10, got 1e+39",
        ),
        (
            {
                "ts": {
                    "class_type": "StablePoseTimestepStrengths",
                    "inputs": {
                        "start_percent": 0.0,
                        "end_percent": 1.0,
                        "strength_start": float("nan"),
                        "strength_end": 0.0,
                        "interpolation": "linear",
                    },
                }
            },
            {"timestep_strength": ["ts", 0]},
            "strength_start: strength must be a number from 0 to 10, got nan",
        ),
    ],
)
@pytest.mark.usefixtures("pose_files")
def test_nan_strengths_and_masks_are_refused_before_sampling(
    comfy_host, test_models, extra_nodes, apply_inputs, message
):
    """Each sampled an all-NaN latent (a black image) and reported success."""
    prompt = base_prompt(test_models) | extra_nodes
    prompt["apply"] = apply_node(**apply_inputs)
    prompt |= sampler("posed", ["apply", 0], next(_SEEDS))
    result = comfy_host.execute(prompt)
    assert not result.ok and any(message in line for line in result.error_messages()), result.error_messages()
    assert "ks_posed" not in result.outputs, "nothing was sampled"


def test_latent_keyframes_with_nan_strength_are_refused(comfy_host):
    """Advanced-ControlNet's LATENT_KEYFRAME read through its fields (a stand-in object with them)."""
    strengths = comfy_host.pack_module("nodes.strengths")
    keyframe = type("LatentKeyframe", (), {"batch_index": 0, "strength": float("nan")})()
    group = type("LatentKeyframeGroup", (), {"keyframes": [keyframe]})()
    with pytest.raises(ValueError, match="frame 0: strength must be a number from 0 to 10, got nan"):
        strengths.frame_strengths_from(group)


# --- pose files ------------------------------------------------------------------------------------------------------
def test_load_node_refuses_links_out_nesting_and_long_names(comfy_host, tmp_path):
    import folder_paths

    load = comfy_host.node_class("StablePoseLoadJSON")()
    clip = Path(folder_paths.get_input_directory()) / "hostile_clip"
    clip.mkdir(exist_ok=True)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps(sequence_of([person_at(100, 100)]).to_pose_keypoint()))
    (clip / "frame_00000.json").symlink_to(secret)
    with pytest.raises(ValueError, match=r"'hostile_clip/frame_00000\.json' leads outside the folder"):
        load.run("input", "hostile_clip")
    (clip / "frame_00000.json").unlink()
    (clip / "frame_00000.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        load.run("input", "hostile_clip")
    with pytest.raises(ValueError, match="is too long") as error:
        load.run("input", "x" * 300)
    assert folder_paths.get_input_directory() not in str(error.value)


def test_save_node_never_replaces_a_file(comfy_host):
    import folder_paths

    folder = Path(folder_paths.get_output_directory()) / "hostile"
    folder.mkdir(exist_ok=True)
    (folder / "pose_99999.json").write_text("kept")
    save = comfy_host.node_class("StablePoseSaveJSON")()
    names = [save.run(sequence_of([person_at(x, 100)]).to_pose_keypoint(), "hostile/pose", False) for x in (1, 2)]
    assert [name["ui"]["text"] for name in names] == [["hostile/pose_100000.json"], ["hostile/pose_100001.json"]]
    assert (folder / "pose_99999.json").read_text() == "kept"
    assert json.loads((folder / "pose_100000.json").read_text())[0]["people"][0]["pose_keypoints_2d"][0] == 1


# --- sample inputs ---------------------------------------------------------------------------------------------------
def test_sample_inputs_are_in_the_input_folder_after_load_and_never_replace_a_users_file(comfy_host, tmp_path):
    import folder_paths

    samples = comfy_host.pack_module("nodes.sample_inputs")
    assert samples.SAMPLE_INPUTS == SAMPLE_NAMES
    workflows = Path(samples.WORKFLOWS_DIR)
    loaded = {
        node["widgets_values"][0]
        for path in workflows.glob("*.json")
        for node in json.loads(path.read_text())["nodes"]
        if node["type"] == "LoadImage"
    }
    assert loaded == set(samples.SAMPLE_INPUTS), "every file a bundled workflow's Load Image names, and only those"
    for name in samples.SAMPLE_INPUTS:  # copied when ComfyUI loaded the pack
        assert (Path(folder_paths.get_input_directory()) / name).read_bytes() == (workflows / name).read_bytes()
    (tmp_path / "stable_pose_astronaut.jpg").write_text("the user's own photo")
    (tmp_path / "stable_pose_example_pose.png").symlink_to(tmp_path / "nowhere.png")
    assert samples.install_sample_inputs(tmp_path) == ["stable_pose_pose_sequence.webp"]
    assert (tmp_path / "stable_pose_astronaut.jpg").read_text() == "the user's own photo"
    assert not (tmp_path / "nowhere.png").exists()
    assert samples.install_sample_inputs(tmp_path) == []
    assert sorted(os.listdir(tmp_path)) == sorted(samples.SAMPLE_INPUTS)
