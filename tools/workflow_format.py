"""Compact descriptions of ComfyUI workflows and their translation into the UI workflow format (version 0.4).

A workflow is described as nodes (type, place, widget values by input name, links by ``"<node key>.<output
name>"``) and groups (:class:`Spec`). What the frontend needs on top (input sockets, the order of
``widgets_values`` including the hidden control-after-generate value after seeds and the upload button value of
``LoadImage``, output names and types, execution order, group frames) is read from the node definitions registered
in a real headless ComfyUI (:class:`harness.comfy_host.ComfyHost`) by :class:`WorkflowBuilder`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import tomllib

from harness.comfy_host import REPO_ROOT, WIDGET_TYPES, ComfyHost, _has_control_widget

UPLOAD_VALUE = "image"  # what the frontend stores for LoadImage's upload button
NOTE_COLOR = ("#432", "#653")
GROUP_COLOR = "#3f789e"
UUID_NAMESPACE = uuid.UUID("6f0d5f6e-3c1a-4b7e-9a55-5751ab1e905e")
TITLE_HEIGHT = 30  # litegraph draws a node's title bar above its pos
GROUP_PADDING, GROUP_TITLE = 15, 40


# ----- compact descriptions -----


@dataclass(frozen=True)
class Node:
    """One node: ``links`` maps an input to ``"<node key>.<output name>"``; unset widgets keep their defaults."""

    key: str
    type: str
    pos: tuple[int, int]
    size: tuple[int, int]
    title: str | None = None
    widgets: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    colors: tuple[str, str] | None = None


@dataclass(frozen=True)
class Group:
    title: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    name: str
    nodes: tuple[Node, ...]
    groups: tuple[Group, ...] = ()


def note(key: str, pos: tuple[int, int], size: tuple[int, int], text: str, title: str = "Read me") -> Node:
    return Node(key, "Note", pos, size, title, widgets={"text": text.strip()}, colors=NOTE_COLOR)


def save_image(key: str, pos: tuple[int, int], size: tuple[int, int], title: str, prefix: str, images: str) -> Node:
    return Node(key, "SaveImage", pos, size, title, {"filename_prefix": prefix}, {"images": images})


# ----- UI format -----


@dataclass
class _Socket:
    name: str
    type: str
    optional: bool
    widget: bool
    link: int | None = None


def registry_properties() -> dict[str, str]:
    """The pack's Comfy Registry id and version (pyproject.toml), as ComfyUI stores them in node properties."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return {"cnr_id": project["name"], "ver": project["version"]}


class WorkflowBuilder:
    """Turns a :class:`Spec` into ComfyUI's UI workflow (version 0.4) with the registered node definitions."""

    def __init__(self, host: ComfyHost) -> None:
        self.host = host

    def registry_properties(self, node_type: str) -> dict[str, str]:
        """``cnr_id``/``ver`` on the pack's nodes: the Comfy Registry id ComfyUI-Manager offers to install."""
        pack_nodes = {name for module in self.host.pack_modules.values() for name in module.NODE_CLASS_MAPPINGS}
        return registry_properties() if node_type in pack_nodes else {}

    def outputs(self, node_type: str) -> list[tuple[str, str]]:
        """(name, type) of each output: RETURN_NAMES where given, else the type, as the frontend labels them."""
        node_class = self.host.node_class(node_type)
        types = [str(kind) for kind in node_class.RETURN_TYPES]
        names = getattr(node_class, "RETURN_NAMES", None) or types
        return list(zip((str(name) for name in names), types, strict=True))

    def sockets(self, node: Node) -> list[_Socket]:
        """The frontend's input slots: every non-widget input, then the widget inputs that are linked."""
        if node.type == "Note":
            return []
        plain, widgets = [], []
        for section, specs in self.host.input_specs(node.type).items():
            for name, (kind, options) in specs.items():
                is_widget = kind in WIDGET_TYPES and not options.get("forceInput")
                if not is_widget:
                    plain.append(_Socket(name, kind, section == "optional", False))
                elif name in node.links:
                    widgets.append(_Socket(name, kind, section == "optional", True))
        unknown = set(node.links) - {socket.name for socket in plain + widgets}
        if unknown:
            raise ValueError(f"{node.key} ({node.type}) has no inputs {sorted(unknown)} to link")
        return plain + widgets

    def widgets_values(self, node: Node, sockets: list[_Socket]) -> list[Any]:
        if node.type == "Note":
            return [node.widgets["text"]]
        specs = {name: spec for section in self.host.input_specs(node.type).values() for name, spec in section.items()}
        ui_inputs = [{"name": s.name, **({"widget": {"name": s.name}} if s.widget else {})} for s in sockets]
        slots = self.host.widget_slots(node.type, ui_inputs)
        unknown = set(node.widgets) - {slot for slot in slots if slot} - {"control_after_generate"}
        if unknown:
            raise ValueError(f"{node.key} ({node.type}) has no widgets {sorted(unknown)}")
        values: list[Any] = []
        for index, slot in enumerate(slots):
            previous = slots[index - 1] if index else None
            if slot is not None:
                values.append(node.widgets[slot] if slot in node.widgets else _default(*specs[slot]))
            elif previous is not None and _has_control_widget(specs[previous][0], previous, specs[previous][1]):
                values.append(node.widgets.get("control_after_generate", "fixed"))
            else:
                values.append(UPLOAD_VALUE)
        return values

    def build(self, spec: Spec) -> dict[str, Any]:
        ids = {node.key: index for index, node in enumerate(spec.nodes, start=1)}
        by_key = {node.key: node for node in spec.nodes}
        sockets = {node.key: self.sockets(node) for node in spec.nodes}
        outputs = {node.key: [] if node.type == "Note" else self.outputs(node.type) for node in spec.nodes}
        links, out_links = _links(spec.nodes, ids, sockets, outputs)
        order = _execution_order(spec.nodes, ids)
        nodes = []
        for node in spec.nodes:
            node_outputs = [
                {"name": name, "type": kind, "links": out_links.get((node.key, slot))}
                for slot, (name, kind) in enumerate(outputs[node.key])
            ]
            nodes.append(self.node_json(node, ids[node.key], order[node.key], sockets[node.key], node_outputs))
        return {
            "id": str(uuid.uuid5(UUID_NAMESPACE, spec.name)),
            "revision": 0,
            "last_node_id": len(spec.nodes),
            "last_link_id": len(links),
            "nodes": nodes,
            "links": links,
            "groups": [_group_json(index, group, by_key) for index, group in enumerate(spec.groups, start=1)],
            "config": {},
            "extra": {"ds": {"scale": 0.6, "offset": [460, 40]}},
            "version": 0.4,
        }

    def node_json(
        self, node: Node, node_id: int, order: int, sockets: list[_Socket], outputs: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A node as the frontend saves it, with its id, execution order, linked input sockets and outputs."""
        ui: dict[str, Any] = {
            "id": node_id,
            "type": node.type,
            "pos": list(node.pos),
            "size": list(node.size),
            "flags": {},
            "order": order,
            "mode": 0,
            "inputs": [_socket_json(socket) for socket in sockets],
            "outputs": outputs,
            "properties": {}
            if node.type == "Note"
            else {"Node name for S&R": node.type, **self.registry_properties(node.type), **node.properties},
            "widgets_values": self.widgets_values(node, sockets),
        }
        if node.title:
            ui["title"] = node.title
        if node.colors:
            ui["color"], ui["bgcolor"] = node.colors
        return ui


def _links(
    nodes: tuple[Node, ...],
    ids: dict[str, int],
    sockets: dict[str, list[_Socket]],
    outputs: dict[str, list[tuple[str, str]]],
) -> tuple[list[list[Any]], dict[tuple[str, int], list[int]]]:
    """The workflow's links (numbering each linked socket) and, per (node, output slot), the links leaving it."""
    types = {node.key: node.type for node in nodes}
    links: list[list[Any]] = []
    out_links: dict[tuple[str, int], list[int]] = {}
    for node in nodes:
        for slot_index, socket in enumerate(sockets[node.key]):
            if socket.name not in node.links:
                continue
            source_key, output_name = node.links[socket.name].split(".", 1)
            names = [name for name, _ in outputs[source_key]]
            if output_name not in names:
                raise ValueError(f"{source_key} ({types[source_key]}) has no output {output_name!r}: {names}")
            source_slot = names.index(output_name)
            socket.link = len(links) + 1
            links.append(
                [
                    socket.link,
                    ids[source_key],
                    source_slot,
                    ids[node.key],
                    slot_index,
                    outputs[source_key][source_slot][1],
                ]
            )
            out_links.setdefault((source_key, source_slot), []).append(socket.link)
    return links, out_links


def _default(kind: str, options: dict[str, Any]) -> Any:
    """The value a new node's widget starts with in the frontend."""
    if "default" in options:
        return options["default"]
    if kind == "COMBO":
        return options["options"][0]
    return options.get("min", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind])


def _socket_json(socket: _Socket) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": socket.name, "type": socket.type, "link": socket.link}
    if socket.widget:
        entry["widget"] = {"name": socket.name}
    if socket.optional:
        entry["shape"] = 7  # the frontend's hollow dot for optional inputs
    return entry


def _execution_order(nodes: Iterable[Node], ids: dict[str, int]) -> dict[str, int]:
    """Topological order (sources first, ties by id), as the frontend stores in ``order``."""
    nodes = list(nodes)
    pending = {node.key: {link.split(".", 1)[0] for link in node.links.values()} for node in nodes}
    order: dict[str, int] = {}
    while pending:
        ready = sorted((key for key, needs in pending.items() if not needs - order.keys()), key=ids.__getitem__)
        if not ready:
            raise ValueError(f"the links form a cycle among {sorted(pending)}")
        for key in ready:
            order[key] = len(order)
            del pending[key]
    return order


def _group_json(index: int, group: Group, nodes: dict[str, Node]) -> dict[str, Any]:
    """A group framing its nodes, their title bars and its own title."""
    members = [nodes[key] for key in group.keys]
    left = min(node.pos[0] for node in members) - GROUP_PADDING
    top = min(node.pos[1] for node in members) - TITLE_HEIGHT - GROUP_TITLE
    right = max(node.pos[0] + node.size[0] for node in members) + GROUP_PADDING
    bottom = max(node.pos[1] + node.size[1] for node in members) + GROUP_PADDING
    return {
        "id": index,
        "title": group.title,
        "bounding": [left, top, right - left, bottom - top],
        "color": GROUP_COLOR,
        "font_size": 24,
        "flags": {},
    }


def workflow_text(workflow: dict[str, Any]) -> str:
    return json.dumps(workflow, indent=2, ensure_ascii=False) + "\n"
