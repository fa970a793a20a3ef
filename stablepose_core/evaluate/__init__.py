"""Pose fidelity: COCO OKS, the per-image score and overlay, AP/CAP/PCE (``python -m stablepose_core.evaluate``)."""
