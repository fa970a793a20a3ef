"""Edit and run the bundled UI-format workflows (``workflows/*.json``) as a user would in ComfyUI: find a node, set a
widget, unlink an input, bypass a node, then run the graph in the headless host."""

from __future__ import annotations

import copy
import json
from typing import Any

from harness.comfy_host import MODE_BYPASSED, REPO_ROOT, ComfyHost, RunResult

WORKFLOWS_DIR = REPO_ROOT / "workflows"


def load(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS_DIR / name).read_text())


def node_of(workflow: dict[str, Any], node_type: str) -> dict[str, Any]:
    (node,) = [node for node in workflow["nodes"] if node["type"] == node_type]
    return node


def set_widget(host: ComfyHost, node: dict[str, Any], name: str, value: Any) -> None:
    node["widgets_values"][host.widget_slots(node["type"], node["inputs"]).index(name)] = value


def unlink(workflow: dict[str, Any], node: dict[str, Any], input_name: str) -> None:
    """Disconnect an input (its widget value applies again), as dragging the link away in ComfyUI does."""
    (socket,) = [socket for socket in node["inputs"] if socket["name"] == input_name]
    link_id, socket["link"] = socket["link"], None
    (link,) = [link for link in workflow["links"] if link[0] == link_id]
    workflow["links"].remove(link)
    origin = next(n for n in workflow["nodes"] if n["id"] == link[1])
    origin["outputs"][link[2]]["links"].remove(link_id)


def bypassed(workflow: dict[str, Any], node_type: str) -> dict[str, Any]:
    copied = copy.deepcopy(workflow)
    node_of(copied, node_type)["mode"] = MODE_BYPASSED
    return copied


def run(host: ComfyHost, workflow: dict[str, Any]) -> RunResult:
    result = host.run_workflow(workflow)
    assert result.ok, result.error_messages()
    return result


def output(result: RunResult, workflow: dict[str, Any], node_type: str, slot: int = 0) -> Any:
    return result.output(node_of(workflow, node_type)["id"], slot)
