"""The real-ComfyUI harness: the pack loads through ComfyUI's loader, the random SD1.5 checkpoint is detected
as SD1.5, a UI workflow converts and runs through ComfyUI's executor, and the validator catches errors."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
import torch

from harness.comfy_host import REPO_ROOT, ComfyHost, RunResult

STABLE_POSE_EXTENSIONS = {".safetensors", ".pth", ".ckpt"}


@pytest.fixture(scope="module")
def sd15_run(comfy_host: ComfyHost, sd15_ui_workflow: dict[str, Any]) -> RunResult:
    return comfy_host.run_workflow(sd15_ui_workflow)


def test_pack_loads_through_comfyui_loader(comfy_host: ComfyHost) -> None:
    import folder_paths

    pack = comfy_host.pack_modules[REPO_ROOT]
    registered = comfy_host.nodes.NODE_CLASS_MAPPINGS
    for name in pack.nodes._NODE_MODULES:  # each node module imports under ComfyUI and registers its nodes
        module = sys.modules.get(f"{pack.__name__}.nodes.{name}")
        assert module is not None, f"nodes/{name}.py failed to import under ComfyUI (see the log)"
        for node_name, node_class in module.NODE_CLASS_MAPPINGS.items():
            assert registered[node_name] is node_class
            assert node_name in pack.NODE_DISPLAY_NAME_MAPPINGS
    paths, extensions = folder_paths.folder_names_and_paths["stable_pose"]
    assert extensions == STABLE_POSE_EXTENSIONS
    assert paths[0] == str(comfy_host.models_dir / "stable_pose")
    assert "random_sd15_adapter.safetensors" in folder_paths.get_filename_list("stable_pose")


def test_ui_workflow_converts_like_the_frontend(comfy_host: ComfyHost, sd15_ui_workflow: dict[str, Any]) -> None:
    prompt = comfy_host.workflow_to_prompt(sd15_ui_workflow)

    # Reroute, PrimitiveNode and Note are frontend-only; the muted and the bypassed node are left out.
    assert set(prompt) == {"3", "4", "5", "6", "7", "8", "9"}
    assert prompt["3"]["inputs"] == {
        "seed": 42,
        "steps": 2,
        "cfg": 7.0,
        "sampler_name": "euler",
        "scheduler": "normal",
        "denoise": 1.0,
        "model": ["4", 0],
        "positive": ["6", 0],
        "negative": ["7", 0],
        "latent_image": ["5", 0],
    }  # control_after_generate skipped; steps from the primitive, not the stale widget value 20
    assert prompt["7"]["inputs"]["clip"] == ["4", 1]  # through the reroute
    assert prompt["9"]["inputs"]["images"] == ["8", 0]  # through the bypassed ImageInvert
    assert prompt["6"]["_meta"]["title"] == "Positive"


def test_widget_layout_has_the_frontends_hidden_values(comfy_host: ComfyHost) -> None:
    assert comfy_host.widget_slots("LoadImage", []) == ["image", None]  # the upload button's value
    assert comfy_host.widget_slots("KSamplerAdvanced", [])[:3] == ["add_noise", "noise_seed", None]
    assert comfy_host.widget_slots("EmptyLatentImage", []) == ["width", "height", "batch_size"]


@pytest.mark.slow
def test_checkpoint_loader_detects_random_checkpoint_as_sd15(sd15_run: RunResult) -> None:
    import comfy.supported_models

    assert sd15_run.ok, sd15_run.errors
    model = sd15_run.output(4, 0)
    assert type(model.model.model_config) is comfy.supported_models.SD15
    assert sd15_run.output(4, 1) is not None and sd15_run.output(4, 2) is not None  # CLIP and VAE


@pytest.mark.slow
def test_ui_workflow_runs_through_the_executor(comfy_host: ComfyHost, sd15_run: RunResult) -> None:
    assert sd15_run.ok, sd15_run.errors
    image = sd15_run.output(8)
    assert image.shape == (1, 64, 64, 3)
    assert torch.isfinite(image).all()
    assert image.std() > 0.01, "the decoded image is flat"
    saved = sd15_run.ui["9"]["images"][0]
    assert (comfy_host.workdir / "output" / saved["subfolder"] / saved["filename"]).is_file()


@pytest.mark.slow
def test_random_controlnet_loads_and_steers_sampling(
    comfy_host: ComfyHost, sd15_ui_workflow: dict[str, Any], sd15_run: RunResult
) -> None:
    prompt = comfy_host.workflow_to_prompt(sd15_ui_workflow)
    prompt |= {
        "20": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "random_sd15_controlnet.safetensors"}},
        "21": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0xFFFFFF}},
        "22": {
            "class_type": "ControlNetApplyAdvanced",
            "inputs": {
                "positive": ["6", 0],
                "negative": ["7", 0],
                "control_net": ["20", 0],
                "image": ["21", 0],
                "strength": 1.0,
                "start_percent": 0.0,
                "end_percent": 1.0,
            },
        },
    }
    prompt["3"]["inputs"] |= {"positive": ["22", 0], "negative": ["22", 1]}

    result = comfy_host.execute(prompt)

    assert result.ok, result.error_messages()
    image = result.output(8)
    assert torch.isfinite(image).all()
    assert not torch.allclose(image, sd15_run.output(8), atol=1e-3), "the ControlNet had no effect"


def test_validator_accepts_the_stock_workflow(comfy_host: ComfyHost, sd15_ui_workflow: dict[str, Any]) -> None:
    assert comfy_host.validate_workflow(sd15_ui_workflow) == []


def _node(workflow: dict[str, Any], node_id: int) -> dict[str, Any]:
    return next(node for node in workflow["nodes"] if node["id"] == node_id)


def test_validator_rejects_wrong_link_type(comfy_host: ComfyHost, sd15_ui_workflow: dict[str, Any]) -> None:
    workflow = copy.deepcopy(sd15_ui_workflow)
    link = next(link for link in workflow["links"] if link[0] == 2)  # EmptyLatentImage -> KSampler.latent_image
    link[1:3] = [6, 0]  # now CONDITIONING from the positive prompt

    errors = comfy_host.validate_workflow(workflow)

    assert len(errors) == 1
    assert "input 'latent_image': expects LATENT but is linked to CONDITIONING from node 6 (Positive)" in errors[0]
    assert not comfy_host.execute(comfy_host.workflow_to_prompt(workflow)).ok  # ComfyUI's own validation agrees


@pytest.mark.parametrize(
    ("node_id", "index", "value", "message"),
    [
        (5, 0, 8, "input 'width': 8 is below the minimum 16"),
        (3, 3, 1000.0, "input 'cfg': 1000.0 is above the maximum 100.0"),
        (3, 4, "no_such_sampler", "input 'sampler_name': 'no_such_sampler' is not one of"),
        (4, 0, "missing.safetensors", "input 'ckpt_name': 'missing.safetensors' is not one of"),
    ],
)
def test_validator_rejects_invalid_widget_values(
    comfy_host: ComfyHost, sd15_ui_workflow: dict[str, Any], node_id: int, index: int, value: Any, message: str
) -> None:
    workflow = copy.deepcopy(sd15_ui_workflow)
    _node(workflow, node_id)["widgets_values"][index] = value

    errors = comfy_host.validate_workflow(workflow)

    assert len(errors) == 1
    assert message in errors[0]


def test_validator_reports_unset_required_inputs(comfy_host: ComfyHost, sd15_ui_workflow: dict[str, Any]) -> None:
    workflow = copy.deepcopy(sd15_ui_workflow)
    workflow["links"] = [link for link in workflow["links"] if link[0] != 8]  # VAE -> VAEDecode

    assert comfy_host.validate_workflow(workflow) == ["node 8 (VAEDecode): input 'vae': required but not set"]


def test_validator_reports_unknown_node_types(comfy_host: ComfyHost, sd15_ui_workflow: dict[str, Any]) -> None:
    workflow = copy.deepcopy(sd15_ui_workflow)
    _node(workflow, 8)["type"] = "NoSuchNode"

    assert comfy_host.validate_workflow(workflow) == ["node 8 (NoSuchNode): unknown node type 'NoSuchNode'"]
