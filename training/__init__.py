"""Headless training of Stable-Pose adapters on a user's own data (``python -m training.train``).

Reproduces the released recipe (frozen SD1.5, adapter initialised from the UNet encoder, AdamW, ε-prediction
MSE with the pose-region weight α, caption dropout, the released augmentation) and writes adapter-only
``.safetensors`` that the ``LoadStablePose`` node loads. See ``docs/training.md``.
"""
