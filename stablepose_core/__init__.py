"""Stable-Pose (Wang et al., NeurIPS 2024) and a 3D body prior in plain PyTorch/numpy; nothing here imports ComfyUI.

Subsystems, each a package, imports only running downwards (``tests/test_layering.py``):

- ``poses``: COCO-17 people, skeleton drawing, pose sequences and files (the bottom layer, with ``atomic``);
- ``model``: the adapter, its PMSA ViT and masks, checkpoints, strength schedules;
- ``detect``: pose extraction backends (built-in BlazePose, DWPose, OpenPose);
- ``evaluate``: OKS, the pose-fidelity score and the COCO evaluation CLI;
- ``body``: the 3D body prior (fit, render, plausibility).

The node pack (``nodes/``) and the trainer (``training/``) build on it.
"""
