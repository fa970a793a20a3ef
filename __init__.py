"""ComfyUI entry point of the Stable-Pose node pack.

ComfyUI imports this folder as a package and reads the three names below; everything that does
model work lives in ``stablepose_core`` (plain PyTorch) and the thin node classes in ``nodes``.
Imported outside ComfyUI (pytest collects this folder as a package, or as a plain module when the folder
name is not an identifier) it defines no nodes.
"""

try:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ImportError as error:  # no parent package (a folder name like "my-clone") or no ComfyUI (folder_paths)
    if __package__ and getattr(error, "name", None) != "folder_paths":
        raise
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
