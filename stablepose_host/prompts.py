"""Run ComfyUI API prompts in this process, without ComfyUI's web server: for headless production jobs
(``python -m training.synthesize``) that drive the user's ComfyUI and models.

ComfyUI is the one :func:`.comfyui.find_comfyui` finds; its own models folder (and ``extra_model_paths.yaml`` is
not read: give ``model_roots`` instead) holds the checkpoints. This pack is loaded through ComfyUI's custom-node
loader, like ComfyUI's start-up does; no other custom nodes are loaded. Prompts go through ComfyUI's
``validate_prompt`` and ``PromptExecutor``. ComfyUI's state is process-global: one runner per process.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .comfyui import PACK_ROOT, HostError, import_comfy


class _Messages:
    """What the executor and nodes call on ComfyUI's ``PromptServer``; events are kept, nothing is served."""

    def __init__(self) -> None:
        from aiohttp import web

        self.client_id = self.last_node_id = self.last_prompt_id = None
        self.sockets_metadata: dict[str, Any] = {}
        self.routes = web.RouteTableDef()  # packs register their HTTP routes at import time

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        """Progress and preview events: not needed headless."""

    def send_progress_text(self, text: str, node_id: str, sid: str | None = None) -> None:
        """Node progress text: not needed headless."""

    def queue_updated(self) -> None:
        """There is no queue."""


class PromptRunner:
    """A ComfyUI booted in this process with this pack loaded; :meth:`run` executes API prompts."""

    def __init__(self, executor: Any, execution: Any) -> None:
        self._executor = executor
        self._execution = execution

    @classmethod
    def start(cls, workdir: Path, model_roots: Iterable[Path] = (), cpu: bool | None = None) -> PromptRunner:
        """Boot ComfyUI with its input/output/temp/user folders under ``workdir``.

        ``model_roots``: extra models folders searched first (``<root>/checkpoints``, ``<root>/stable_pose``, ...).
        ``cpu``: ComfyUI's CPU mode (default: when torch sees no CUDA device). Raises ``HostError`` when ComfyUI is
        missing or the pack does not load.
        """
        folder_paths = import_comfy("folder_paths", cpu)
        server, hooks, nodes, execution = (
            import_comfy(name) for name in ("server", "hook_breaker_ac10a0", "nodes", "execution")
        )
        for kind in ("input", "output", "temp", "user"):
            folder = Path(workdir).resolve() / kind
            folder.mkdir(parents=True, exist_ok=True)
            getattr(folder_paths, f"set_{kind}_directory")(str(folder))
        messages = getattr(server.PromptServer, "instance", None) or _Messages()
        server.PromptServer.instance = messages
        hooks.save_functions()
        try:
            asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
            builtin = set(nodes.NODE_CLASS_MAPPINGS)
            if not asyncio.run(nodes.load_custom_node(str(PACK_ROOT), builtin, module_parent="custom_nodes")):
                raise HostError(f"ComfyUI could not load the Stable-Pose pack from {PACK_ROOT}: see the log above")
        finally:
            hooks.restore_functions()
        for root in model_roots:
            for folder in list(folder_paths.folder_names_and_paths):
                if folder not in ("custom_nodes", "configs"):
                    folder_paths.add_model_folder_path(folder, str(Path(root).resolve() / folder), is_default=True)
        executor = execution.PromptExecutor(
            messages, cache_type=execution.CacheType.CLASSIC, cache_args={"lru": 0, "ram": 0}
        )
        return cls(executor, execution)

    @staticmethod
    def node_types() -> frozenset[str]:
        """The node types ComfyUI has registered (built-in and this pack)."""
        return frozenset(sys.modules["nodes"].NODE_CLASS_MAPPINGS)

    @staticmethod
    def with_defaults(prompt: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The prompt with every required input it leaves out set to the input's default (a combo's first option),
        as a node freshly added in ComfyUI has them."""
        registered = sys.modules["nodes"].NODE_CLASS_MAPPINGS
        completed = {}
        for node_id, node in prompt.items():
            inputs = dict(node["inputs"])
            for name, spec in registered[node["class_type"]].INPUT_TYPES().get("required", {}).items():
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                if name not in inputs and "default" in options:
                    inputs[name] = options["default"]
                elif name not in inputs and isinstance(spec[0], list) and spec[0]:
                    inputs[name] = spec[0][0]
            completed[node_id] = {**node, "inputs": inputs}
        return completed

    def run(self, prompt: dict[str, dict[str, Any]]) -> dict[str, list[list[Any]]]:
        """Execute an API prompt; ``{node id: [per output slot: [values]]}`` of every node that ran or was cached.

        Outputs cached from an earlier prompt with the same inputs are reused, as in ComfyUI (models load once).
        Raises ``HostError`` with ComfyUI's messages when the prompt is invalid or a node fails.
        """
        prompt_id = uuid.uuid4().hex
        valid, error, outputs, node_errors = asyncio.run(self._execution.validate_prompt(prompt_id, prompt, None))
        if not valid or node_errors:
            details = [error.get("message", "")] if error else []
            for node_id, found in node_errors.items():
                reasons = "; ".join(f"{e.get('message')}: {e.get('details')}" for e in found.get("errors", []))
                details.append(f"node {node_id} ({found.get('class_type')}): {reasons}")
            raise HostError("invalid prompt: " + " | ".join(line for line in details if line))
        self._executor.execute(prompt, prompt_id, {}, outputs)
        failures = [data for event, data in self._executor.status_messages if event == "execution_error"]
        if failures:
            failed = failures[0]
            raise HostError(
                f"node {failed.get('node_id')} ({failed.get('node_type')}) failed: {failed.get('exception_message')}"
            )
        results = {}
        for node_id in prompt:
            entry = self._executor.caches.outputs.get(node_id)
            if entry is not None:
                results[node_id] = entry.outputs
        return results
