"""Pose extraction: the built-in BlazePose (MediaPipe's networks in PyTorch), DWPose, OpenPose (``backends``)."""
