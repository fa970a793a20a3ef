"""What ComfyUI users expect of every node of the pack and of its bundled workflows."""

import json
import re
import sys

import pytest
import tomllib

from harness.comfy_host import REPO_ROOT, ComfyHost

PROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.json"))
# The design card's node IDs (saved workflows depend on them); new nodes are checked through the registry below.
DESIGN_CARD_NODES = {"LoadStablePose", "ApplyStablePose", "PoseMaskPreview", "OpenPoseExtract", "StablePoseEditor"}
# One pattern for every display name: what the node does, in title case, then the pack: "Apply Adapter (Stable-Pose)".
DISPLAY_NAME = re.compile(r"(?P<what>[A-Z][A-Za-z0-9]*(?: [A-Za-z0-9-]+)*) \(Stable-Pose\)")
# What users read: the README, the docs and the bundled workflows' notes.
USER_TEXTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")), *WORKFLOWS]
# Names the nodes (or their menu category) had before the display names followed the pattern: no UI shows them.
RETIRED_NAMES = (
    "OpenPose Extract",
    "Extract Pose →",
    "Edit Pose (",
    "Stable-Pose Editor",
    "Apply Stable-Pose",
    "Load Stable-Pose Adapter",
    "Stable-Pose Attention Masks",
    "Stable-Pose Mask Preview",
    "Stable-Pose Score",
    "Stable-Pose Select Best",
    "Stable-Pose Strength",
    "Draw Poses for Stable-Pose",
    "Stable-Pose/keyframes",
)


def pack_nodes(comfy_host: ComfyHost) -> dict[str, type]:
    return dict(comfy_host.pack_modules[REPO_ROOT].NODE_CLASS_MAPPINGS)


@pytest.mark.host
def test_every_node_has_one_category_root_a_description_and_input_tooltips(comfy_host: ComfyHost) -> None:
    nodes = pack_nodes(comfy_host)
    assert set(nodes) >= DESIGN_CARD_NODES
    display_names = comfy_host.pack_modules[REPO_ROOT].NODE_DISPLAY_NAME_MAPPINGS
    for name, node_class in nodes.items():
        assert node_class.CATEGORY.startswith("Stable-Pose/"), (name, node_class.CATEGORY)
        assert len(getattr(node_class, "DESCRIPTION", "")) > 40, name
        assert display_names[name] != name, name  # a name that says what it does, the ID stays for workflows
        for section, inputs in comfy_host.input_specs(name).items():
            for input_name, (_kind, options) in inputs.items():
                assert options.get("tooltip"), f"{name}.{section}.{input_name} has no tooltip"


@pytest.mark.host
def test_display_names_follow_one_pattern(comfy_host: ComfyHost) -> None:
    display_names = comfy_host.pack_modules[REPO_ROOT].NODE_DISPLAY_NAME_MAPPINGS
    assert set(display_names) == set(pack_nodes(comfy_host))
    for node_id, display_name in display_names.items():
        match = DISPLAY_NAME.fullmatch(display_name)
        assert match, f"{node_id}: {display_name!r} is not '<What it does> (Stable-Pose)'"
        assert "Stable-Pose" not in match["what"], f"{node_id}: {display_name!r} names the pack twice"
    assert len(set(display_names.values())) == len(display_names), "two nodes share a display name"


@pytest.mark.host
def test_docs_and_workflow_notes_name_nodes_as_the_ui_shows_them(comfy_host: ComfyHost) -> None:
    """No retired name anywhere users read, and each ``**Name** (`NodeID`)`` names the node as its display name."""
    display_names = comfy_host.pack_modules[REPO_ROOT].NODE_DISPLAY_NAME_MAPPINGS
    wrong = []
    for path in USER_TEXTS:
        text = path.read_text()
        wrong += [f"{path.name}: {name!r}" for name in RETIRED_NAMES if name in text]
        for name, node_id in re.findall(r"\*\*([^*]+)\*\* \(`(\w+)`[,)]", text):
            if display_names.get(node_id, name) != name:
                wrong.append(f"{path.name}: **{name}** for {node_id}, shown as {display_names[node_id]!r}")
    assert wrong == []


@pytest.mark.host
@pytest.mark.parametrize(
    ("folder", "module", "register"),
    [
        ("stable_pose", "model_folder", "register_model_folder"),
        ("pose_detectors", "extract", "_register_weights_folder"),
    ],
)
def test_model_folders_keep_the_users_default_first(comfy_host: ComfyHost, tmp_path, folder, module, register):
    """An ``extra_model_paths.yaml`` entry read before the pack loads stays first (ComfyUI's default/save path)."""
    import folder_paths

    saved = folder_paths.folder_names_and_paths.get(folder)
    user_path = str(tmp_path / "user_models" / folder)
    folder_paths.folder_names_and_paths[folder] = ([user_path], set(saved[1]) if saved else set())
    try:
        getattr(sys.modules[f"{comfy_host.pack_modules[REPO_ROOT].__name__}.nodes.{module}"], register)()
        paths = folder_paths.folder_names_and_paths[folder][0]
        assert paths[0] == user_path and len(paths) == 2
    finally:
        if saved is None:
            del folder_paths.folder_names_and_paths[folder]
        else:
            folder_paths.folder_names_and_paths[folder] = saved


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_carries_the_registry_id_a_thumbnail_and_no_optional_backend(path) -> None:
    workflow = json.loads(path.read_text())
    assert path.with_suffix(".jpg").is_file(), f"{path.name} has no thumbnail {path.stem}.jpg"
    ours = [node for node in workflow["nodes"] if node["type"] in DESIGN_CARD_NODES]
    assert ours
    for node in ours:  # ComfyUI-Manager offers to install the pack a loaded workflow needs by this id
        assert node["properties"].get("cnr_id") == PROJECT["name"], node["type"]
        assert node["properties"].get("ver") == PROJECT["version"], node["type"]
    for node in workflow["nodes"]:
        if node["type"] == "OpenPoseExtract":  # the built-in detector: present on every install
            assert node["widgets_values"][0] == "blazepose", node["widgets_values"]
