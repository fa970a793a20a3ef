"""The Stable-Pose adapter (Wang et al., NeurIPS 2024): PMSA ViT, pose masks, UNet blocks, checkpoints, strengths."""
