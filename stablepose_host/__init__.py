"""Find the ComfyUI to use outside ComfyUI's own process (training, tools, tests) and import its modules.

Inside ComfyUI the pack's nodes import ComfyUI directly; this package serves the code that runs ComfyUI's model
code as a library. See ``stablepose_host.comfyui``.
"""

from .comfyui import ComfyUINotFound, HostError, find_comfyui, import_comfy

__all__ = ["ComfyUINotFound", "HostError", "find_comfyui", "import_comfy"]
