"""Poses: COCO-17 people (``keypoints``), backend formats, Stable-Pose skeleton drawing, sequences, files."""
