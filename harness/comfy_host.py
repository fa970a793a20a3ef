"""A real ComfyUI, booted headless as a library, for the tests, the demo and the tools.

The host is the one ``stablepose_host.find_comfyui`` finds (``$COMFYUI_PATH``, the ComfyUI this pack is installed
in, else the ComfyUI 0.3.75 that ``tools/bootstrap.sh`` extracts to ``.cache/comfyui``; tested against 0.3.75 and
0.8.0). ``ComfyHost.boot`` does what ComfyUI's ``main.py``
does minus the web server: CPU mode, input/output/temp/user/model folders under a work folder, ComfyUI's
built-in extra nodes, then each pack through ``nodes.load_custom_node`` exactly as ComfyUI loads
``custom_nodes/``. Prompts run through ComfyUI's own ``execution.validate_prompt`` and
``execution.PromptExecutor``; UI workflows (what users drag into ComfyUI) are converted to API prompts
with the registered node definitions, following the frontend's ``widgets_values`` layout.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from stablepose_host import HostError, find_comfyui, import_comfy

REPO_ROOT = Path(__file__).resolve().parent.parent

# Frontend-only node types: never sent to the backend.
VIRTUAL_NODE_TYPES = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})
MODE_MUTED, MODE_BYPASSED = 2, 4
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
# A required combo with one of these flags gets an "upload" button widget after the required widgets.
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
MODEL_FOLDERS_EXCLUDED = frozenset({"custom_nodes", "configs"})

Link = tuple[str, int]  # (origin node id, origin output slot); JSON values are never tuples


class HeadlessServer:
    """What ``PromptExecutor`` and nodes use of ComfyUI's ``PromptServer``; messages are recorded, not sent.

    ``routes`` is a real aiohttp route table, so packs that register HTTP routes at import time load as
    they do in ComfyUI (the routes are collected, not served).
    """

    def __init__(self) -> None:
        from aiohttp import web

        self.client_id: str | None = None
        self.last_node_id: str | None = None
        self.last_prompt_id: str | None = None
        self.sockets_metadata: dict[str, dict] = {}
        self.routes = web.RouteTableDef()
        self.messages: list[tuple[str, Any]] = []

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        self.messages.append((event, data))

    def send_progress_text(self, text: str, node_id: str, sid: str | None = None) -> None:
        self.messages.append(("progress_text", {"node": node_id, "text": text}))

    def queue_updated(self) -> None:
        """Nothing is queued: prompts run synchronously."""


@dataclass
class RunResult:
    """What one prompt produced: node outputs as ComfyUI caches them, UI outputs, and errors."""

    outputs: dict[str, list[list[Any]]] = field(default_factory=dict)  # node id -> per slot, one value per list item
    ui: dict[str, dict[str, Any]] = field(default_factory=dict)  # node id -> e.g. {"images": [{filename, ...}]}
    errors: list[dict[str, Any]] = field(default_factory=list)  # ComfyUI's validation/execution error records
    cached: frozenset[str] = frozenset()  # nodes whose outputs ComfyUI's cache gave (same input signature) unrun

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_messages(self) -> list[str]:
        """One readable line per error (prompt-level, per-input validation, or the node that raised)."""
        lines = []
        for error in self.errors:
            node = (
                f"node {error['node_id']} ({error.get('node_type') or error.get('class_type')}): "
                if "node_id" in error
                else ""
            )
            for reason in error.get("errors") or [error]:
                text = (reason.get("exception_message") or reason.get("message"), reason.get("details"))
                lines.append(node + " ".join(part for part in text if part))
        return lines

    def output(self, node_id: str | int, slot: int = 0) -> Any:
        """The value of output ``slot`` of a node (the first list item; ComfyUI batches inside tensors)."""
        return self.outputs[str(node_id)][slot][0]


def _spec(spec: Any) -> tuple[str, dict[str, Any]]:
    """(kind, options) of one INPUT_TYPES entry; a list type is a COMBO whose options are the list."""
    kind = spec[0]
    options = dict(spec[1]) if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if isinstance(kind, list | tuple):
        options["options"] = list(kind)
        kind = "COMBO"
    return kind, options


def _has_control_widget(kind: str, name: str, options: dict[str, Any]) -> bool:
    """The frontend's rule for the hidden ``control_after_generate`` widget that follows a value widget."""
    if kind == "INT":
        control = options.get("control_after_generate")
        return name in ("seed", "noise_seed") if control is None else bool(control)
    return kind == "COMBO" and bool(options.get("control_after_generate"))


def _value_error(kind: str, options: dict[str, Any], value: Any) -> str | None:
    """Why a widget value is invalid for its input definition, or None."""
    if kind == "COMBO":
        allowed = options.get("options", [])
        return None if value in allowed else f"{value!r} is not one of {allowed[:8]}{'...' if len(allowed) > 8 else ''}"
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{value!r} is not a number"
        if kind == "INT" and not float(value).is_integer():
            return f"{value!r} is not an integer"
        low, high = options.get("min"), options.get("max")
        if low is not None and value < low:
            return f"{value} is below the minimum {low}"
        if high is not None and value > high:
            return f"{value} is above the maximum {high}"
        return None
    expected = {"BOOLEAN": bool, "STRING": str}.get(kind)
    if expected is not None and not isinstance(value, expected):
        return f"{value!r} is not a {kind}"
    return None


class _Graph:
    """A UI workflow's nodes and links, with frontend-only nodes resolved away."""

    def __init__(self, workflow: dict[str, Any]) -> None:
        if workflow.get("definitions", {}).get("subgraphs"):
            raise HostError("workflows with subgraphs are not supported: unpack the subgraph in ComfyUI first")
        if "nodes" not in workflow:
            raise HostError("not a UI workflow (no 'nodes'); API prompts go to ComfyHost.execute directly")
        self.nodes = {node["id"]: node for node in workflow["nodes"]}
        self.links: dict[int, tuple[int, int]] = {}
        for link in workflow.get("links", []):
            if isinstance(link, dict):
                self.links[link["id"]] = (link["origin_id"], link["origin_slot"])
            else:
                self.links[link[0]] = (link[1], link[2])

    def active_nodes(self) -> Iterator[dict[str, Any]]:
        for node in self.nodes.values():
            if node["type"] not in VIRTUAL_NODE_TYPES and node.get("mode", 0) not in (MODE_MUTED, MODE_BYPASSED):
                yield node

    def source(self, link_id: int | None) -> Link | Any:
        """Where a link's value comes from: a (node, slot) of a real node, a primitive's value, or None."""
        if link_id is None or link_id not in self.links:
            return None
        origin_id, slot = self.links[link_id]
        origin = self.nodes.get(origin_id)
        if origin is None or origin.get("mode", 0) == MODE_MUTED:
            return None
        if origin["type"] == "Reroute":
            return self.source(origin["inputs"][0].get("link"))
        if origin["type"] == "PrimitiveNode":
            return origin["widgets_values"][0]
        if origin.get("mode", 0) == MODE_BYPASSED:
            return self.source(self._bypass_link(origin, slot))
        return (str(origin_id), slot)

    @staticmethod
    def _bypass_link(node: dict[str, Any], slot: int) -> int | None:
        """A bypassed node passes through the input of its output's type (same index first), as the frontend."""
        wanted = node["outputs"][slot]["type"]
        inputs = node.get("inputs") or []
        matching = [index for index, slot_info in enumerate(inputs) if slot_info.get("type") == wanted]
        if not matching:
            return None
        return inputs[slot if slot in matching else matching[0]].get("link")


def _label(node_id: str, class_type: str, title: str | None = None) -> str:
    return f"node {node_id} ({title or class_type})"


class ComfyHost:
    """A booted headless ComfyUI with packs loaded; see ``ComfyHost.boot``."""

    booted: ClassVar[ComfyHost | None] = None

    def __init__(self, comfy_path: Path, workdir: Path, models_dir: Path) -> None:
        import execution

        import nodes

        self.comfy_path = comfy_path
        self.workdir = workdir
        self.models_dir = models_dir
        self.nodes = nodes
        self.execution = execution
        self.server = HeadlessServer()
        self.executor = execution.PromptExecutor(
            self.server, cache_type=execution.CacheType.CLASSIC, cache_args={"lru": 0, "ram": 0}
        )
        self.pack_modules: dict[Path, Any] = {}

    @classmethod
    def boot(
        cls,
        workdir: Path,
        packs: Iterable[Path] = (REPO_ROOT,),
        models_dir: Path | None = None,
        input_dir: Path | None = None,
        cpu: bool = True,
    ) -> ComfyHost:
        """Boot ComfyUI with its output/temp/user folders under ``workdir`` and load ``packs``.

        Models are looked up in ``models_dir/<folder>`` first (default ``workdir/models``; e.g.
        ``checkpoints/``, ``stable_pose/``), then in ComfyUI's own folders; images for ``LoadImage`` in
        ``input_dir`` (default ``workdir/input``). ComfyUI's state is process-global: one host per process.
        Raises ``HostError`` if a pack fails to load.
        """
        if cls.booted is not None:
            raise HostError(f"ComfyUI was already booted in this process (work folder {cls.booted.workdir})")
        comfy_path = find_comfyui()
        folder_paths, hook_breaker_ac10a0, server = (
            import_comfy(name, cpu) for name in ("folder_paths", "hook_breaker_ac10a0", "server")
        )

        workdir = Path(workdir).resolve()
        folders = {
            "input": input_dir or workdir / "input",
            "output": workdir / "output",
            "temp": workdir / "temp",
            "user": workdir / "user",
        }
        for name, folder in folders.items():
            Path(folder).mkdir(parents=True, exist_ok=True)
            getattr(folder_paths, f"set_{name}_directory")(str(Path(folder).resolve()))
        host = cls(comfy_path, workdir, Path(models_dir).resolve() if models_dir else workdir / "models")
        if getattr(server.PromptServer, "instance", None) is None:
            server.PromptServer.instance = host.server
        hook_breaker_ac10a0.save_functions()
        asyncio.run(host.nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
        builtin_names = set(host.nodes.NODE_CLASS_MAPPINGS)
        for pack in packs:
            host._load_pack(Path(pack).resolve(), builtin_names)
        hook_breaker_ac10a0.restore_functions()
        host._register_models_dir(folder_paths)
        cls.booted = host
        return host

    def _load_pack(self, pack: Path, builtin_names: set[str]) -> None:
        """``nodes.load_custom_node`` as ComfyUI's start-up calls it; its logged traceback goes into the error."""
        records: list[logging.LogRecord] = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger().addHandler(handler)
        try:
            loaded = asyncio.run(self.nodes.load_custom_node(str(pack), builtin_names, module_parent="custom_nodes"))
        finally:
            logging.getLogger().removeHandler(handler)
        if not loaded:
            log = "\n".join(record.getMessage() for record in records)
            raise HostError(f"ComfyUI could not load the custom node pack {pack}:\n{log}")
        self.pack_modules[pack] = sys.modules[str(pack).replace(".", "_x_")]

    def _register_models_dir(self, folder_paths: Any) -> None:
        """Make ``workdir/models/<folder>`` the first (default) path of every model folder, like an
        ``extra_model_paths.yaml`` entry marked ``is_default``; ComfyUI's own folders stay searchable."""
        for folder in list(folder_paths.folder_names_and_paths):
            if folder not in MODEL_FOLDERS_EXCLUDED:
                folder_paths.add_model_folder_path(folder, str(self.models_dir / folder), is_default=True)

    def pack_module(self, name: str, pack: Path = REPO_ROOT) -> Any:
        """A module of a loaded pack (``nodes.stable_pose_patch``) as ComfyUI imported it, under the package name
        its loader chose."""
        return importlib.import_module(f"{self.pack_modules[pack].__name__}.{name}")

    # ----- node definitions and UI workflows -----

    def node_class(self, class_type: str) -> type:
        node_class = self.nodes.NODE_CLASS_MAPPINGS.get(class_type)
        if node_class is None:
            raise HostError(f"unknown node type {class_type!r}: is the pack that provides it installed?")
        return node_class

    def input_specs(self, class_type: str) -> dict[str, dict[str, tuple[str, dict[str, Any]]]]:
        """``{"required"/"optional": {name: (kind, options)}}`` from the node's ``INPUT_TYPES()``."""
        declared = self.node_class(class_type).INPUT_TYPES()
        return {
            section: {name: _spec(spec) for name, spec in declared.get(section, {}).items()}
            for section in ("required", "optional")
        }

    def self_validated_inputs(self, class_type: str) -> tuple[set[str], bool]:
        """Inputs the node validates itself (``VALIDATE_INPUTS`` / V3 ``validate_inputs`` arguments), and whether
        it takes ``**kwargs``; ComfyUI skips its range and combo checks for those, and so does the validator."""
        from comfy_api.internal import _ComfyNodeInternal, first_real_override

        node_class = self.node_class(class_type)
        if issubclass(node_class, _ComfyNodeInternal):
            validate = first_real_override(node_class, "validate_inputs")
        else:
            validate = getattr(node_class, "VALIDATE_INPUTS", None)
        if validate is None:
            return set(), False
        spec = inspect.getfullargspec(validate)
        return set(spec.args), spec.varkw is not None

    def widget_slots(self, class_type: str, ui_inputs: list[dict[str, Any]]) -> list[str | None]:
        """Input names of the entries of a node's ``widgets_values``, in the frontend's order.

        None marks values the backend never receives: the ``control_after_generate`` widget after seeds
        (and inputs flagged ``control_after_generate``) and the upload button of image/video combos, which
        the frontend appends after the last required widget. Inputs of custom widget types count when the
        UI node lists them as widget sockets.
        """
        ui_widgets = {slot["widget"]["name"] for slot in ui_inputs if slot.get("widget")}
        slots: list[str | None] = []
        for section, specs in self.input_specs(class_type).items():
            upload = False
            for name, (kind, options) in specs.items():
                if options.get("forceInput") or (kind not in WIDGET_TYPES and name not in ui_widgets):
                    continue
                slots.append(name)
                if _has_control_widget(kind, name, options):
                    slots.append(None)
                upload |= section == "required" and kind == "COMBO" and any(options.get(f) for f in UPLOAD_FLAGS)
            if upload:
                slots.append(None)
        return slots

    def workflow_to_prompt(self, workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Convert a UI workflow (``nodes``/``links``/``widgets_values``) into an API prompt, as the frontend's
        "Queue" does: frontend-only nodes vanish (reroutes and bypassed nodes pass their input through,
        primitives become constants on the inputs they feed), muted nodes are dropped."""
        graph = _Graph(workflow)
        prompt: dict[str, dict[str, Any]] = {}
        for node in graph.active_nodes():
            ui_inputs = node.get("inputs") or []
            values = node.get("widgets_values") or []
            slots = self.widget_slots(node["type"], ui_inputs)
            pairs = values.items() if isinstance(values, dict) else zip(slots, values, strict=False)
            # list values are wrapped as the frontend does, so that only links are bare [node_id, slot] lists
            inputs = {
                name: {"__value__": v} if isinstance(v, list) else v
                for name, v in pairs
                if name is not None and name in slots
            }
            for slot in ui_inputs:
                source = graph.source(slot.get("link"))
                name = slot["widget"]["name"] if slot.get("widget") else slot["name"]
                if isinstance(source, tuple):
                    inputs[name] = list(source)
                elif source is not None:
                    inputs[name] = {"__value__": source} if isinstance(source, list) else source
            prompt[str(node["id"])] = {
                "class_type": node["type"],
                "inputs": inputs,
                "_meta": {"title": node.get("title") or node["type"]},
            }
        return prompt

    def validate_workflow(self, workflow: dict[str, Any]) -> list[str]:
        """Check a UI workflow against the registered node definitions; returns readable errors.

        Checks every active node (not only those feeding an output): the type exists, every required
        input is set, linked inputs receive a compatible type (ComfyUI's ``validate_node_input``), widget
        values are valid (combo options, INT/FLOAT range, value types) unless the node validates them itself
        (``execute`` then runs ComfyUI's full validation, ``VALIDATE_INPUTS`` included).
        """
        from comfy_execution.graph_utils import is_link

        graph = _Graph(workflow)
        unknown = [
            f"{_label(str(n['id']), n['type'], n.get('title'))}: unknown node type {n['type']!r}"
            for n in graph.active_nodes()
            if n["type"] not in self.nodes.NODE_CLASS_MAPPINGS
        ]
        if unknown:
            return unknown
        errors = []
        prompt = self.workflow_to_prompt(workflow)
        for node_id, node in prompt.items():
            self_validated, validates_all = self.self_validated_inputs(node["class_type"])
            for section, specs in self.input_specs(node["class_type"]).items():
                for name, (kind, options) in specs.items():
                    value = node["inputs"].get(name)
                    if value is None:
                        problem = "required but not set" if section == "required" else None
                    elif is_link(value):
                        problem = self._link_error(prompt, value, kind)
                    elif validates_all or name in self_validated:
                        problem = None
                    else:
                        problem = _value_error(kind, options, _unwrap(value))
                    if problem:
                        errors.append(
                            f"{_label(node_id, node['class_type'], node['_meta']['title'])}: input {name!r}: {problem}"
                        )
        return errors

    def _link_error(self, prompt: dict[str, dict[str, Any]], link: list, kind: str) -> str | None:
        """Why a link cannot feed an input of type ``kind`` (ComfyUI's ``validate_node_input``), or None."""
        from comfy_execution.validation import validate_node_input

        origin = prompt.get(link[0])
        if origin is None:
            return f"linked to missing node {link[0]}"
        origin_label = _label(link[0], origin["class_type"], origin["_meta"]["title"])
        return_types = self.node_class(origin["class_type"]).RETURN_TYPES
        if link[1] >= len(return_types):
            return f"linked to output {link[1]} of {origin_label}, which has {len(return_types)} outputs"
        if not validate_node_input(return_types[link[1]], kind):
            return f"expects {kind} but is linked to {return_types[link[1]]} from {origin_label}"
        return None

    # ----- execution -----

    def validate_prompt(self, prompt: dict[str, dict[str, Any]]) -> RunResult:
        """ComfyUI's own validation of an API prompt (``execution.validate_prompt``, the nodes' ``VALIDATE_INPUTS``
        included), running nothing: a result holding only its errors, ``ok`` when the prompt would run."""
        return self._validated(uuid.uuid4().hex, prompt)[1]

    def _validated(self, prompt_id: str, prompt: dict[str, dict[str, Any]]) -> tuple[list[str] | None, RunResult]:
        """(the outputs to run, or None when nothing may run; the validation errors). Like the server, the outputs
        that validated run; unlike it, a partly invalid prompt is not "ok"."""
        valid, error, output_ids, node_errors = asyncio.run(self.execution.validate_prompt(prompt_id, prompt, None))
        invalid = [{"node_id": node_id, **details} for node_id, details in node_errors.items()]
        return (output_ids if valid else None), RunResult(errors=invalid if valid else [error, *invalid])

    def execute(self, prompt: dict[str, dict[str, Any]], extra_data: dict[str, Any] | None = None) -> RunResult:
        """Validate (``execution.validate_prompt``) and run an API prompt with ``PromptExecutor``, as ComfyUI's
        server and prompt worker do. The executor keeps ComfyUI's output cache between calls."""
        prompt_id = uuid.uuid4().hex
        output_ids, validation = self._validated(prompt_id, prompt)
        if output_ids is None:
            return validation
        self.server.messages.clear()
        self.server.last_prompt_id = prompt_id
        self.executor.execute(prompt, prompt_id, extra_data or {}, output_ids)
        outputs = {}
        for node_id in prompt:
            entry = self.executor.caches.outputs.get(node_id)
            if entry is not None:
                outputs[node_id] = entry.outputs
        messages = self.executor.status_messages
        errors = validation.errors + [data for event, data in messages if event == "execution_error"]
        cached = frozenset(node for event, data in messages if event == "execution_cached" for node in data["nodes"])
        return RunResult(outputs, dict(self.executor.history_result["outputs"]), errors, cached)

    def run_workflow(self, workflow: dict[str, Any]) -> RunResult:
        """Convert and execute a UI workflow; the workflow is embedded in saved PNGs as the frontend does."""
        return self.execute(self.workflow_to_prompt(workflow), {"extra_pnginfo": {"workflow": workflow}})


def _unwrap(value: Any) -> Any:
    return value["__value__"] if isinstance(value, dict) and "__value__" in value else value
