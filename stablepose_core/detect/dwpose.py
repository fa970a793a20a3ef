"""DWPose (Yang et al., ICCV 2023 workshops) from the ONNX files comfyui_controlnet_aux users already have.

A YOLOX file (``yolox_l.onnx``; ``yolox_m``/``yolox_s`` too) finds people (COCO classes) and a DWPose file
(``dw-ll_ucoco_384.onnx``; ``dw-ll``/``dw-mm``/``dw-ss_ucoco.onnx`` too: RTMPose distilled, 133 COCO-WholeBody
joints, SimCC head) places joints in each person box; the first 17 whole-body joints are COCO-17. The pre- and
post-processing follow DWPose's ONNX pipeline as comfyui_controlnet_aux runs it: RGB input; YOLOX letterbox to 640²
(pad 114), grid decoding, NMS at IoU 0.45 over person scores > 0.1, boxes kept above 0.3; each box padded 1.25×,
widened to the pose model's aspect ratio and warped to its input (288 × 384 or 192 × 256), ImageNet mean/std;
SimCC arg-max decoding (score = the smaller of the x and y maxima) and joints kept at score >= 0.3.

Frames go through in batches (:mod:`.batches`): one detector call per batch of frames, one pose call per batch
of crops; letterbox, crops (bilinear ``grid_sample``, as ``cv2.warpAffine``) and decoding are tensor ops on the
networks' device. The networks run in PyTorch (:mod:`.onnx_torch`) or, where the user has it, onnxruntime;
nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import groupby
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import nms

from ..poses.keypoints import COCO17_NAMES, PoseKeypoints
from .batches import batch_sizes
from .onnx_torch import load_network

DETECTOR_FILES = ("yolox_l.onnx", "yolox_m.onnx", "yolox_s.onnx")  # best first
POSE_FILES = ("dw-ll_ucoco_384.onnx", "dw-ll_ucoco.onnx", "dw-mm_ucoco.onnx", "dw-ss_ucoco.onnx")
DETECTOR_SIZE = 640
DETECTOR_STRIDES = (8, 16, 32)
CANDIDATE_SCORE, BOX_SCORE, NMS_IOU = 0.1, 0.3, 0.45
BOX_PADDING = 1.25
JOINT_SCORE = 0.3
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class Network(Protocol):
    """A network of either runtime: NCHW float batch -> float32 outputs on its device."""

    input_shape: tuple[int | None, ...]  # the graph input's declared shape, None for a symbolic axis

    def __call__(self, batch: torch.Tensor) -> list[torch.Tensor]: ...


def rgb_uint8(image: np.ndarray) -> np.ndarray:
    """The image, C-contiguous, after checking it is (H, W, 3) uint8 (what every detector takes)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def letterbox(frames: torch.Tensor, size: int = DETECTOR_SIZE) -> tuple[torch.Tensor, float]:
    """YOLOX input of same-size frames ``(N, H, W, 3)`` uint8: resized bilinearly to fit ``size``² (as
    ``cv2.resize``, rounded to whole grey levels), top-left aligned, padded with 114 -> ``(N, 3, size, size)``."""
    ratio = min(size / frames.shape[1], size / frames.shape[2])
    height, width = int(frames.shape[1] * ratio), int(frames.shape[2] * ratio)
    pixels = frames.permute(0, 3, 1, 2).float()
    resized = F.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False).round()
    padded = torch.full((len(frames), 3, size, size), 114.0, device=frames.device)
    padded[:, :, :height, :width] = resized
    return padded, ratio


def decode_yolox(raw: torch.Tensor, size: int = DETECTOR_SIZE) -> torch.Tensor:
    """Raw YOLOX rows ``(..., N, 5 + classes)`` (grid offsets, log sizes, probabilities) -> centre/size in pixels."""
    grids, strides = [], []
    for stride in DETECTOR_STRIDES:
        cells = torch.arange(size // stride, device=raw.device)
        ys, xs = torch.meshgrid(cells, cells, indexing="ij")
        grids.append(torch.stack([xs, ys], -1).reshape(-1, 2))
        strides.append(torch.full((len(grids[-1]), 1), stride, device=raw.device))
    grid, stride = torch.cat(grids), torch.cat(strides)
    decoded = raw.float().clone()
    decoded[..., :2] = (decoded[..., :2] + grid) * stride
    decoded[..., 2:4] = decoded[..., 2:4].exp() * stride
    return decoded


def yolox_nms(boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Indices of the ``xyxy`` boxes YOLOX's demo NMS keeps, best first: greedy at IoU ``NMS_IOU`` over inclusive
    pixel areas (far corners + 1 give torchvision's op the same IoUs). On the CPU, where torchvision's op exists in
    every build, for the few candidates a frame has."""
    inclusive = torch.cat([boxes[:, :2], boxes[:, 2:] + 1], dim=1)
    return nms(inclusive.cpu(), scores.cpu(), NMS_IOU).to(boxes.device)


def person_boxes(raw: torch.Tensor, ratio: float) -> list[torch.Tensor]:
    """YOLOX output ``(N, rows, 85)`` of N frames -> each frame's person boxes ``(M, 4)`` xyxy in image pixels,
    best first."""
    decoded = decode_yolox(raw)
    scores = decoded[..., 4] * decoded[..., 5]  # objectness × P(person)
    frames = []
    for rows, row_scores in zip(decoded, scores, strict=True):
        candidates = row_scores > CANDIDATE_SCORE
        centre, size, kept_scores = rows[candidates, :2], rows[candidates, 2:4], row_scores[candidates]
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=1) / ratio
        keep = yolox_nms(boxes, kept_scores)
        frames.append(boxes[keep[kept_scores[keep] > BOX_SCORE]].reshape(-1, 4))
    return frames


def box_to_crop(boxes: torch.Tensor, input_width: int, input_height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres and (w, h) ``(K, 2)`` of the image regions boxes ``(K, 4)`` map to: padded 1.25× and widened to
    the input's aspect ratio."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    width, height = ((boxes[:, 2:] - boxes[:, :2]) * BOX_PADDING).unbind(1)
    aspect = input_width / input_height
    wide = width > height * aspect
    size = torch.stack([torch.where(wide, width, height * aspect), torch.where(wide, width / aspect, height)], 1)
    return centre, size


def crop_grid(
    centre: torch.Tensor, size: torch.Tensor, input_width: int, input_height: int, image_size: tuple[int, int]
) -> torch.Tensor:
    """``grid_sample`` grids ``(K, h, w, 2)`` of regions ``centre ± size / 2`` warped to ``w × h``: output pixel
    (x, y) samples image point ``centre + ((x, y) - (w, h) / 2) / scale`` (``cv2.warpAffine``'s pixel centres)."""
    scale = (input_width / size[:, 0])[:, None]
    x = centre[:, :1] + (torch.arange(input_width, device=size.device) - input_width / 2) / scale
    y = centre[:, 1:] + (torch.arange(input_height, device=size.device) - input_height / 2) / scale
    width, height = image_size
    grid_x = ((2 * x + 1) / width - 1)[:, None, :].expand(-1, input_height, -1)
    grid_y = ((2 * y + 1) / height - 1)[:, :, None].expand(-1, -1, input_width)
    return torch.stack([grid_x, grid_y], -1)


def crop(frame: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """The crops ``(K, 3, h, w)`` of one frame ``(H, W, 3)`` uint8 at ``grids`` (:func:`crop_grid`): bilinear, zero
    outside (as ``cv2.warpAffine``, without its rounding to whole grey levels, so that the crop moves smoothly with
    the box), ImageNet-normalised. One ``grid_sample``."""
    count, height, width, _ = grids.shape
    pixels = frame.permute(2, 0, 1)[None].float()
    patches = F.grid_sample(pixels, grids.reshape(1, count * height, width, 2), align_corners=False)
    patches = patches.reshape(3, count, height, width).transpose(0, 1)
    mean, std = (torch.tensor(value, device=frame.device)[:, None, None] for value in (PIXEL_MEAN, PIXEL_STD))
    return (patches - mean) / std


def decode_simcc(simcc_x: torch.Tensor, simcc_y: torch.Tensor, split_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SimCC ``(..., K, Wx)``, ``(..., K, Wy)`` -> joint positions ``(..., K, 2)`` in input pixels and scores
    ``(..., K)``; the first maximal bin wins, and a joint whose score is not positive is placed at -1."""
    bins = torch.stack([simcc_x.argmax(-1), simcc_y.argmax(-1)], -1).float()
    scores = torch.minimum(simcc_x.amax(-1), simcc_y.amax(-1))
    bins[scores <= 0] = -1
    return bins / split_ratio, scores


class DWPosePipeline:
    """YOLOX person boxes + DWPose joints (multi-person) around two networks of any runtime."""

    def __init__(self, detector: Network, pose: Network, device: torch.device) -> None:
        self.detector, self.pose, self.device = detector, pose, device
        self.frame_batch, self.crop_batch = batch_sizes(device)
        height, width = pose.input_shape[2:]
        self.input_width, self.input_height = width or 288, height or 384

    def __call__(self, image: np.ndarray) -> PoseKeypoints:
        return self.detect([image])[0]

    def detect(self, images: Sequence[np.ndarray]) -> list[PoseKeypoints]:
        """The people of each image; same-size runs of images go through the networks in batches."""
        poses = []
        for _, run in groupby((rgb_uint8(image) for image in images), key=lambda image: image.shape):
            run = list(run)
            for start in range(0, len(run), self.frame_batch):
                frames = torch.from_numpy(np.stack(run[start : start + self.frame_batch])).to(self.device)
                poses += self._detect_frames(frames)
        return poses

    @torch.inference_mode()
    def _detect_frames(self, frames: torch.Tensor) -> list[PoseKeypoints]:
        height, width = frames.shape[1:3]
        tensor, ratio = letterbox(frames)
        boxes = person_boxes(self.detector(tensor)[0], ratio)
        centre, size = box_to_crop(torch.cat(boxes), self.input_width, self.input_height)
        grids = crop_grid(centre, size, self.input_width, self.input_height, (width, height)).split(
            [len(frame_boxes) for frame_boxes in boxes]
        )
        if not len(centre):
            return [PoseKeypoints.empty(width, height) for _ in frames]
        crops = torch.cat([crop(frame, grid) for frame, grid in zip(frames, grids, strict=True)])
        joints = self.joints(crops, centre, size).cpu().numpy()
        people = np.split(joints, np.cumsum([len(frame_boxes) for frame_boxes in boxes])[:-1])
        return [PoseKeypoints(frame_people, width, height) for frame_people in people]

    def joints(self, crops: torch.Tensor, centre: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
        """COCO-17 joints ``(K, 17, 3)`` in image pixels of K crops, ``crop_batch`` per pose-network call."""
        outputs = [self.pose(batch)[:2] for batch in crops.split(self.crop_batch)]
        simcc_x, simcc_y = (torch.cat([output[axis] for output in outputs]) for axis in (0, 1))
        body = len(COCO17_NAMES)
        locations, scores = decode_simcc(simcc_x[:, :body], simcc_y[:, :body], simcc_x.shape[-1] / self.input_width)
        input_size = torch.tensor([self.input_width, self.input_height], device=size.device)
        points = locations / input_size * size[:, None] + (centre - size / 2)[:, None]
        confidence = torch.where(scores >= JOINT_SCORE, scores, 0.0)
        return torch.cat([points, confidence[..., None]], -1).float()

    def close(self) -> None:
        del self.detector, self.pose


class TorchNetwork:
    """A converted ONNX network (:mod:`.onnx_torch`) on a device, in ``dtype``, weights and input in
    ``channels_last`` memory (faster convolutions on CPUs and GPUs, the same values); returns float32 outputs."""

    def __init__(self, path: str | os.PathLike, device: torch.device, dtype: torch.dtype) -> None:
        converted = load_network(path)
        self.module = converted.module.to(device, dtype, memory_format=torch.channels_last)
        self.input_shape, self.dtype = converted.input_shape, dtype

    def __call__(self, batch: torch.Tensor) -> list[torch.Tensor]:
        outputs = self.module(batch.to(self.dtype).contiguous(memory_format=torch.channels_last))
        return [output.float() for output in (outputs if isinstance(outputs, list | tuple) else [outputs])]


class OnnxRuntimeNetwork:
    """An onnxruntime session (CUDA provider when asked for and present; ``threads`` CPU threads, 0 =
    onnxruntime's default); a graph declared for batch 1 runs once per image."""

    def __init__(self, path: str | os.PathLike, device: torch.device, threads: int = 0) -> None:
        import onnxruntime as ort

        providers = ["CPUExecutionProvider"]
        if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(os.fspath(path), options, providers=providers)
        self.input_shape = tuple(dim if isinstance(dim, int) else None for dim in self.session.get_inputs()[0].shape)

    def __call__(self, batch: torch.Tensor) -> list[torch.Tensor]:
        name = self.session.get_inputs()[0].name
        pieces = batch.split(1) if self.input_shape[0] == 1 else [batch]
        runs = [self.session.run(None, {name: piece.float().cpu().numpy()}) for piece in pieces]
        return [torch.from_numpy(np.concatenate(outputs)).to(batch.device) for outputs in zip(*runs, strict=True)]


def dwpose_detector(
    detector: str | os.PathLike,
    pose: str | os.PathLike,
    device: str | torch.device = "cpu",
    runtime: str = "torch",
    dtype: torch.dtype = torch.float32,
) -> DWPosePipeline:
    """DWPose on ``device`` with the networks in PyTorch (``runtime="torch"``, ``dtype``: float16 where the device
    runs it) or onnxruntime (``"onnxruntime"``, float32)."""
    device = torch.device(device)
    if runtime == "torch":
        networks = [TorchNetwork(path, device, dtype) for path in (detector, pose)]
    elif runtime == "onnxruntime":
        networks = [OnnxRuntimeNetwork(path, device) for path in (detector, pose)]
    else:
        raise ValueError(f"unknown DWPose runtime {runtime!r}: 'torch' or 'onnxruntime'")
    return DWPosePipeline(*networks, device)
