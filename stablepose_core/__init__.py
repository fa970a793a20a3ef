"""Stable-Pose (Wang et al., NeurIPS 2024) in plain PyTorch: adapter, PMSA ViT, pose masks, checkpoints.

Nothing in this package imports ComfyUI; the node pack and the training script both build on it.
"""
