"""``python -m stablepose_host``: print the ComfyUI folder ``find_comfyui`` picks (exit 1 with the reason if none)."""

import sys

from .comfyui import ComfyUINotFound, find_comfyui

try:
    print(find_comfyui())
except ComfyUINotFound as error:
    print(error, file=sys.stderr)
    sys.exit(1)
