"""BlazePose (Bazarevsky et al., 2020) as MediaPipe 0.10.14 runs it, in PyTorch, from weights shipped with the pack.

The two networks are MediaPipe's ``pose_detection.tflite`` and ``pose_landmark_full.tflite`` (Apache-2.0),
converted losslessly to fp16 safetensors by ``tools/convert_blazepose.py`` and run by
:class:`~stablepose_core.detect.tflite_graph.TFLiteGraph`. The steps around them follow MediaPipe's
``pose_landmark_cpu`` graph for ``mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)``:

1. the image letterboxed to 224² (zero border, values in [-1, 1]); SSD anchors (5 layers, strides 8/16/32/32/32,
   fixed size) decode boxes and 4 keypoints; scores sigmoid(clip(x, ±100)) >= 0.5; weighted NMS at IoU 0.3 and
   the best cluster kept (one person);
2. the region of interest: centred on keypoint 0 (mid-hip), side 2 × |kp1 − kp0| × 1.25, rotated so that
   kp0 → kp1 points up;
3. that square warped to 256² (``cv2.warpPerspective``, replicated border, values in [0, 1]); the person is
   present when the pose flag is >= 0.5; 33 landmarks (x, y / 256, visibility = sigmoid) refined on the 64²
   heat map (9 × 9 window, sigmoid-weighted mean where its maximum is >= 0.5) and projected back to the image;
4. the 33 world landmarks (metres, origin at the hips' centre) turned from the crop's axes back to the image's
   by the region's rotation (MediaPipe's WorldLandmarkProjection): x to the image right, y down, z away from
   the camera.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .tflite_graph import TFLiteGraph, shard_paths

MODEL_DIR = Path(__file__).parent / "blazepose_models"
DETECTOR_STEM = "blazepose_detector"  # shards <stem>-0000i-of-0000n.safetensors
LANDMARK_STEM = "blazepose_landmark_full"

DETECTOR_SIZE, LANDMARK_SIZE = 224, 256
ANCHOR_STRIDES = (8, 16, 32, 32, 32)
MIN_DETECTION_SCORE, SCORE_CLIP, NMS_IOU = 0.5, 100.0, 0.3
ROI_SCALE = 1.25
MIN_POSE_PRESENCE = 0.5
NUM_LANDMARKS, LANDMARK_VALUES = 39, 5  # 33 body landmarks + 6 auxiliary; x, y, z, visibility, presence
WORLD_VALUES = 3  # the world-landmark head: x, y, z in metres for the same 39 landmarks
# MediaPipe 0.10.14's pose graph leaves the refinement window at the calculator's default, 9 × 9 (measured).
HEATMAP_KERNEL, MIN_REFINE_CONFIDENCE = 9, 0.5


def ssd_anchor_centres(size: int = DETECTOR_SIZE, strides: tuple[int, ...] = ANCHOR_STRIDES) -> np.ndarray:
    """MediaPipe's SSD anchor centres (normalised x, y): 2 per cell per layer, layers of equal stride merged."""
    centres = []
    layer = 0
    while layer < len(strides):
        same = sum(1 for stride in strides[layer:] if stride == strides[layer])
        cells = math.ceil(size / strides[layer])
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs, ys], -1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, 2 * same, axis=1).reshape(-1, 2))
        layer += same
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class RotatedRect:
    """A region in pixels: centre, size, rotation (radians, clockwise on screen, as MediaPipe's NormalizedRect)."""

    x: float
    y: float
    width: float
    height: float
    rotation: float = 0.0


def crop(image: np.ndarray, rect: RotatedRect, size: int, border: int, value_range: tuple[float, float]) -> np.ndarray:
    """``rect`` warped to ``size``² as MediaPipe's OpenCV ImageToTensor converter does -> (size, size, 3) float32."""
    corners = cv2.boxPoints(((rect.x, rect.y), (rect.width, rect.height), math.degrees(rect.rotation)))
    target = np.array([[0, size], [0, 0], [size, 0], [size, size]], np.float32)
    matrix = cv2.getPerspectiveTransform(corners.astype(np.float32), target)
    warped = cv2.warpPerspective(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)
    low, high = value_range
    return warped.astype(np.float32) * ((high - low) / 255.0) + low


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (xmin, ymin, xmax, ymax) box with many."""
    low = np.maximum(box[:2], boxes[:, :2])
    high = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / np.maximum(area + areas - inter, 1e-12)


def best_detection_keypoints(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray) -> np.ndarray | None:
    """The 4 keypoints (normalised on the 224² input) of the best weighted-NMS cluster, or None."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    keep = scores >= MIN_DETECTION_SCORE
    if not keep.any():
        return None
    raw, scores, anchors = raw_boxes.reshape(len(anchors), -1)[keep] / DETECTOR_SIZE, scores[keep], anchors[keep]
    centres, sizes = raw[:, :2] + anchors, raw[:, 2:4]
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    keypoints = raw[:, 4:].reshape(len(raw), -1, 2) + anchors[:, None]
    best = int(np.argmax(scores))
    cluster = _iou(boxes[best], boxes) > NMS_IOU
    weights = scores[cluster]
    return np.tensordot(weights, keypoints[cluster], axes=1) / weights.sum()


def _normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def refine_from_heatmap(landmarks: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmap: x, y (normalised) -> sigmoid-weighted mean of the 7×7 window."""
    heat_h, heat_w, _ = heatmap.shape
    offset = (HEATMAP_KERNEL - 1) // 2
    refined = landmarks.copy()
    for index, (x, y) in enumerate(landmarks[:, :2]):
        col, row = int(x * heat_w), int(y * heat_h)  # truncation toward zero, as the C++ cast
        if not (0 <= col < heat_w and 0 <= row < heat_h):
            continue
        rows = slice(max(0, row - offset), min(heat_h, row + offset + 1))
        cols = slice(max(0, col - offset), min(heat_w, col + offset + 1))
        confidence = 1.0 / (1.0 + np.exp(-heatmap[rows, cols, index].astype(np.float32)))
        if confidence.max() >= MIN_REFINE_CONFIDENCE and confidence.sum() > 0:
            grid_rows, grid_cols = np.mgrid[rows, cols]
            refined[index, 0] = (grid_cols * confidence).sum() / heat_w / confidence.sum()
            refined[index, 1] = (grid_rows * confidence).sum() / heat_h / confidence.sum()
    return refined


def project(local: np.ndarray, rect: RotatedRect) -> np.ndarray:
    """Points normalised on a :func:`crop` of ``rect`` -> image pixels (MediaPipe's LandmarkProjection)."""
    x, y = local[:, 0] - 0.5, local[:, 1] - 0.5
    cos, sin = math.cos(rect.rotation), math.sin(rect.rotation)
    return np.stack([(cos * x - sin * y) * rect.width + rect.x, (sin * x + cos * y) * rect.height + rect.y], axis=1)


def project_world(local: np.ndarray, rect: RotatedRect) -> np.ndarray:
    """World landmarks in the axes of a :func:`crop` of ``rect`` -> the image's axes: x, y turned by the region's
    rotation, z kept (MediaPipe's WorldLandmarkProjectionCalculator)."""
    cos, sin = math.cos(rect.rotation), math.sin(rect.rotation)
    x, y, z = local[:, 0], local[:, 1], local[:, 2]
    return np.stack([cos * x - sin * y, sin * x + cos * y, z], axis=1)


@contextmanager
def cpu_threads(device: torch.device, batch: int) -> Iterator[None]:
    """On CPU, one intra-op thread for a single image (then the setting restored), torch's threads for a batch. A
    single image's ops are tiny: with a thread pool each waits for the others, which on a loaded CPU costs 10-20×;
    a batch's ops are large enough to share (docs/poses.md has the figures)."""
    if device.type != "cpu" or batch > 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class BlazePose:
    """Single-person BlazePose: RGB uint8 image -> (33, 6) landmarks or None: x, y in pixels, visibility, then
    the world landmark x, y, z in metres; a batch of images (:meth:`detect`, any sizes) goes through each network
    in one call."""

    def __init__(self, device: str | torch.device = "cpu", model_dir: str | os.PathLike = MODEL_DIR) -> None:
        self.device = torch.device(device)
        self.detector = TFLiteGraph(shard_paths(model_dir, DETECTOR_STEM)).to(self.device)
        self.landmarker = TFLiteGraph(shard_paths(model_dir, LANDMARK_STEM)).to(self.device)
        self.anchors = ssd_anchor_centres()

    def _run(self, graph: TFLiteGraph, pixels: list[np.ndarray]) -> list[np.ndarray]:
        """One network call on a batch of ``(size, size, 3)`` inputs -> its outputs, batch first."""
        tensor = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).to(self.device)
        with cpu_threads(self.device, len(pixels)):
            return [output.float().cpu().numpy() for output in graph(tensor)]

    def regions_of_interest(self, images: Sequence[np.ndarray]) -> list[RotatedRect | None]:
        """Detection (one network call for all images) -> per image the rotated square the landmark network looks
        at (pixels), or None if nobody."""
        pixels = []
        for image in images:
            side = max(image.shape[:2])
            whole = RotatedRect(image.shape[1] / 2, image.shape[0] / 2, side, side)
            pixels.append(crop(image, whole, DETECTOR_SIZE, cv2.BORDER_CONSTANT, (-1, 1)))
        raw_boxes, raw_scores = self._run(self.detector, pixels)
        return [
            _region(best_detection_keypoints(boxes, scores, self.anchors), image.shape[1], image.shape[0])
            for image, boxes, scores in zip(images, raw_boxes, raw_scores, strict=True)
        ]

    def landmarks(self, images: Sequence[np.ndarray], rects: Sequence[RotatedRect]) -> list[np.ndarray | None]:
        """The 33 landmarks inside each ``rect`` (one network call), projected to image pixels, with their world
        landmarks (the class's six columns), or None where no pose is present."""
        pixels = [
            crop(image, rect, LANDMARK_SIZE, cv2.BORDER_REPLICATE, (0, 1))
            for image, rect in zip(images, rects, strict=True)
        ]
        outputs = self._run(self.landmarker, pixels)
        return [_landmark_rows(*per_image, rect) for *per_image, rect in zip(*outputs, rects, strict=True)]

    def detect(self, images: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        """Each image's landmarks (33, 6) or None; two network calls for the whole batch."""
        rects = self.regions_of_interest(images)
        present = [index for index, rect in enumerate(rects) if rect is not None]
        found: list[np.ndarray | None] = [None] * len(images)
        if present:
            landmarks = self.landmarks([images[index] for index in present], [rects[index] for index in present])
            for index, points in zip(present, landmarks, strict=True):
                found[index] = points
        return found

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        return self.detect([image])[0]


def _landmark_rows(
    raw: np.ndarray, flag: np.ndarray, heatmap: np.ndarray, world: np.ndarray, rect: RotatedRect
) -> np.ndarray | None:
    """One image's landmark network outputs -> (33, 6) landmarks in pixels and metres, or None (no pose)."""
    if float(flag.reshape(-1)[0]) < MIN_POSE_PRESENCE:
        return None
    raw = raw.reshape(NUM_LANDMARKS, LANDMARK_VALUES)
    points = project(refine_from_heatmap(raw[:, :2] / LANDMARK_SIZE, heatmap)[:33], rect)
    visibility = 1.0 / (1.0 + np.exp(-raw[:33, 3].astype(np.float64)))
    world = project_world(world.reshape(NUM_LANDMARKS, WORLD_VALUES)[:33], rect)
    return np.concatenate([points, visibility[:, None], world], axis=1).astype(np.float32)


def _region(keypoints: np.ndarray | None, width: int, height: int) -> RotatedRect | None:
    """The detection's 4 keypoints (normalised on the letterboxed 224² input) -> the landmark region in pixels."""
    if keypoints is None:
        return None
    side = max(height, width)
    pad_x, pad_y = (1 - width / side) / 2, (1 - height / side) / 2  # letterbox, fractions of the 224² input
    keypoints = (keypoints - (pad_x, pad_y)) / (1 - 2 * pad_x, 1 - 2 * pad_y) * (width, height)
    (x0, y0), (x1, y1) = keypoints[0], keypoints[1]
    size = 2 * math.hypot(x1 - x0, y1 - y0) * ROI_SCALE
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0))
    return RotatedRect(float(x0), float(y0), size, size, rotation)
