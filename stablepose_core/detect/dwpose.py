"""DWPose (Yang et al., ICCV 2023 workshops) from the two ONNX files comfyui_controlnet_aux users already have.

``yolox_l.onnx`` finds people (YOLOX-L, COCO classes) and ``dw-ll_ucoco_384.onnx`` (RTMPose-L distilled, 133
COCO-WholeBody joints, SimCC head) places joints in each person box; the first 17 whole-body joints are
COCO-17. The pre- and post-processing follow DWPose's ONNX pipeline as comfyui_controlnet_aux runs it: RGB
input; YOLOX letterbox to 640² (pad 114), grid decoding, class-aware NMS at IoU 0.45 over scores > 0.1, boxes
kept above 0.3; each box padded 1.25×, widened to the model's aspect ratio and warped to 288 × 384, ImageNet
mean/std; SimCC arg-max decoding (score = the smaller of the x and y maxima) and joints kept at score >= 0.3.
Runs with onnxruntime; nothing is downloaded.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..poses.keypoints import COCO17_NAMES, PoseKeypoints

DETECTOR_FILE = "yolox_l.onnx"
POSE_FILE = "dw-ll_ucoco_384.onnx"
DETECTOR_SIZE = 640
DETECTOR_STRIDES = (8, 16, 32)
CANDIDATE_SCORE, BOX_SCORE, NMS_IOU = 0.1, 0.3, 0.45
BOX_PADDING = 1.25
JOINT_SCORE = 0.3
PIXEL_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], np.float32)


def rgb_uint8(image: np.ndarray) -> np.ndarray:
    """The image, C-contiguous, after checking it is (H, W, 3) uint8 (what every detector takes)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def letterbox(image: np.ndarray, size: int = DETECTOR_SIZE) -> tuple[np.ndarray, float]:
    """YOLOX input: resized to fit ``size``², top-left aligned, padded with 114; (1, 3, size, size) float32."""
    ratio = min(size / image.shape[0], size / image.shape[1])
    height, width = int(image.shape[0] * ratio), int(image.shape[1] * ratio)
    padded = np.full((size, size, 3), 114, np.uint8)
    padded[:height, :width] = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return padded.transpose(2, 0, 1)[None].astype(np.float32), ratio


def decode_yolox(raw: np.ndarray, size: int = DETECTOR_SIZE) -> np.ndarray:
    """Raw YOLOX rows ``(N, 5 + classes)`` (grid offsets, log sizes, probabilities) -> centre/size in pixels."""
    grids, strides = [], []
    for stride in DETECTOR_STRIDES:
        cells = size // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grids.append(np.stack([xs, ys], -1).reshape(-1, 2))
        strides.append(np.full((cells * cells, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    decoded = raw.astype(np.float32).copy()
    decoded[:, :2] = (decoded[:, :2] + grid) * stride
    decoded[:, 2:4] = np.exp(decoded[:, 2:4]) * stride
    return decoded


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression over ``xyxy`` boxes (inclusive pixel areas, as YOLOX's demo)."""
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    order, keep = scores.argsort()[::-1], []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.maximum(0.0, bottom_right - top_left + 1), axis=1)
        order = rest[inter / (areas[best] + areas[rest] - inter) <= iou_threshold]
    return keep


def person_boxes(raw: np.ndarray, ratio: float) -> np.ndarray:
    """YOLOX output ``(N, 85)`` -> person boxes ``(M, 4)`` xyxy in image pixels, best first."""
    decoded = decode_yolox(raw)
    scores = decoded[:, 4] * decoded[:, 5]  # objectness × P(person)
    candidates = scores > CANDIDATE_SCORE
    centre, size = decoded[candidates, :2], decoded[candidates, 2:4]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1) / ratio
    keep = [i for i in nms(boxes, scores[candidates], NMS_IOU) if scores[candidates][i] > BOX_SCORE]
    return boxes[keep].reshape(-1, 4)


def box_to_crop(box: np.ndarray, input_width: int, input_height: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre and (w, h) of the image region a box maps to: padded 1.25× and widened to the input's aspect."""
    centre = (box[:2] + box[2:]) / 2
    width, height = (box[2:] - box[:2]) * BOX_PADDING
    aspect = input_width / input_height
    size = np.array([width, width / aspect] if width > height * aspect else [height * aspect, height])
    return centre, size


def crop(image: np.ndarray, centre: np.ndarray, size: np.ndarray, input_width: int, input_height: int) -> np.ndarray:
    """The region ``centre ± size / 2`` warped to ``input_width × input_height``, normalised, (1, 3, h, w)."""
    scale = input_width / size[0]
    warp = np.array(
        [[scale, 0, input_width / 2 - scale * centre[0]], [0, scale, input_height / 2 - scale * centre[1]]],
        np.float32,
    )
    patch = cv2.warpAffine(image, warp, (input_width, input_height), flags=cv2.INTER_LINEAR)
    return ((patch.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)[None]


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """SimCC ``(K, Wx)``, ``(K, Wy)`` -> joint positions ``(K, 2)`` in input pixels and scores ``(K,)``."""
    bins = np.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], -1).astype(np.float32)
    scores = np.minimum(simcc_x.max(-1), simcc_y.max(-1))
    bins[scores <= 0] = -1
    return bins / split_ratio, scores


class DWPoseDetector:
    """YOLOX-L person boxes + DWPose-L joints (multi-person) with onnxruntime."""

    def __init__(self, detector: str | os.PathLike, pose: str | os.PathLike, device: str = "cpu") -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self._detector = ort.InferenceSession(os.fspath(detector), providers=providers)
        self._pose = ort.InferenceSession(os.fspath(pose), providers=providers)
        height, width = self._pose.get_inputs()[0].shape[2:]
        self._input_size = (int(width), int(height)) if isinstance(width, int) else (288, 384)

    def __call__(self, image: np.ndarray) -> PoseKeypoints:
        image = rgb_uint8(image)
        height, width = image.shape[:2]
        tensor, ratio = letterbox(image)
        raw = self._detector.run(None, {self._detector.get_inputs()[0].name: tensor})[0][0]
        people = [self._joints(image, box) for box in person_boxes(raw, ratio)]
        if not people:
            return PoseKeypoints.empty(width, height)
        return PoseKeypoints(np.stack(people), width, height)

    def _joints(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        input_width, input_height = self._input_size
        centre, size = box_to_crop(box, input_width, input_height)
        tensor = crop(image, centre, size, input_width, input_height)
        simcc_x, simcc_y = self._pose.run(None, {self._pose.get_inputs()[0].name: tensor})[:2]
        locations, scores = decode_simcc(simcc_x[0], simcc_y[0], simcc_x.shape[-1] / input_width)
        points = locations / (input_width, input_height) * size + centre - size / 2
        body = len(COCO17_NAMES)
        confidence = np.where(scores[:body] >= JOINT_SCORE, scores[:body], 0.0)
        return np.concatenate([points[:body], confidence[:, None]], axis=1).astype(np.float32)

    def close(self) -> None:
        del self._detector, self._pose
