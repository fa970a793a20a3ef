"""DWPose's two ONNX files rebuilt with the true architectures and seeded random weights, for tests.

comfyui_controlnet_aux users keep ``ckpts/yzd-v/DWPose/yolox_l.onnx`` and ``dw-ll_ucoco_384.onnx``; this module
writes files of the same networks and signatures (random weights: the detections are meaningless) to
``.cache/test-models/ckpts/yzd-v/DWPose/`` so the pack's real loading code can run on them.

- ``yolox_l.onnx``: YOLOX-L of Megvii's YOLOX (``exps/default/yolox_l.py``, depth 1.0, width 1.0): Focus stem,
  CSPDarknet (dark2-dark5, SPP in dark5), PAFPN, decoupled head, Conv-BN(eps 1e-3)-SiLU; exported as YOLOX's
  ``tools/export_onnx.py`` does by default (no grid decoding): input ``images`` (1, 3, 640, 640) of raw 0-255
  pixels, output ``output`` (1, 8400, 85), rows ``[box (4), sigmoid(obj), sigmoid(classes) (80)]``, strides 8,
  16, 32.
- ``dw-ll_ucoco_384.onnx``: DWPose-L, i.e. RTMPose-L whole-body 384x288 (mmpose
  ``rtmpose-l_8xb32-270e_coco-ubody-wholebody-384x288.py``): CSPNeXt-P5 (deepen 1.0, widen 1.0, expand ratio
  0.5, channel attention, SiLU, last stage only: 1024 x 12 x 9) and RTMCCHead (7x7 conv to 133 joints, ScaleNorm +
  Linear to 256, one GAU with s = 128 and expansion 2, no relative bias or rotary encoding, Linears to 576 x-bins
  and 768 y-bins); exported with mmdeploy's SimCC names: input ``input`` (batch, 3, 384, 288), outputs
  ``simcc_x`` (batch, 133, 576) and ``simcc_y`` (batch, 133, 768), batch dynamic (comfyui_controlnet_aux runs
  all crops of a frame in one batch).

Weights come from one ``torch.Generator`` seeded with :data:`SEED`: conv/linear weights N(0, 1/fan_in), biases 0,
BatchNorm scale/shift near 1/0, GAU offsets uniform [0, 1) as mmpose draws them. BatchNorm running statistics are
measured on one photo (:func:`calibration_inputs`), as training measures them on data; with identity statistics
YOLOX's raw 0-255 input drives the random layers into overflowing box sizes. To give the plumbing something to do,
the YOLOX head is tamed (documented in :data:`DETECTOR_HEAD_BIASES`): its 1x1 prediction convs are drawn
N(0, 0.01²) as detection heads commonly initialise theirs, and their biases make stride 32 report a few
confident, large "person" boxes and strides 8 and 16 none, so the pose model runs on their crops.

Usage (from the repo root): ``python -m harness.dwpose_models [--force]``.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
CKPTS_DIR = REPO_ROOT / ".cache" / "test-models" / "ckpts"  # comfyui_controlnet_aux's ``ckpts`` layout
DWPOSE_DIR = CKPTS_DIR / "yzd-v" / "DWPose"
SEED = 20230728
VERSION = f"3/{SEED}"  # bump when an architecture, the initialisation or the export changes
STAMP_FILE = ".stable-pose-test-models"  # written last: its VERSION says both files are complete and current
OPSET = 17
METADATA = {"stable_pose.test_model": "random weights for tests; not a trained model"}

# Published sizes (parameters include BatchNorm's). YOLOX README, YOLOX-L: 54.2 M parameters, 155.6 GFLOPs
# (YOLOX counts 2 per multiply-add). mmpose projects/rtmpose/benchmark/README.md, whose "FLOPS(G)" count
# multiply-adds: RTMPose-L body (17 joints) 384x288 27.79 M parameters, 9.35 G; RTMPose-L whole-body 384x288
# 10.07 G (also DWPose-L 384x288 in mmpose's configs/wholebody_2d_keypoint/dwpose/README.md). No parameter count
# is published for the whole-body model; it differs from the body model only in the final 7x7 conv: 116 more
# output channels of 1024 x 7 x 7 weights + 1 bias.
YOLOX_L_PARAMS_M, YOLOX_L_GFLOPS = 54.2, 155.6
RTMPOSE_L_BODY_PARAMS_M, RTMPOSE_L_BODY_GMACS, RTMPOSE_L_WHOLEBODY_GMACS = 27.79, 9.35, 10.07
WHOLEBODY_EXTRA_PARAMS = (133 - 17) * (1024 * 7 * 7 + 1)

# YOLOX head: (objectness, person, log(box side / stride)) biases of the prediction convs per stride. Objectness
# -20 silences strides 8 and 16; at stride 32 objectness and person logits of 3 give scores near 0.9 (above the
# 0.3 cut) and box sides of 30 strides (960 px at 640²) overlap so much that NMS keeps a handful.
DETECTOR_HEAD_BIASES = {8: (-20.0, 0.0, 0.0), 16: (-20.0, 0.0, 0.0), 32: (3.0, 3.0, math.log(30.0))}
PREDICTION_STD = 0.01


# ----- blocks shared by both networks -----


class ConvBNAct(nn.Sequential):
    """Conv (no bias, "same" padding) -> BatchNorm -> SiLU: YOLOX's BaseConv, mmcv's ConvModule."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.SiLU(),
        )


class SPPBottleneck(nn.Module):
    """Halve the channels, concatenate with 5/9/13 max-pools (stride 1), project to ``cout``."""

    def __init__(self, cin: int, cout: int, kernels: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(cin, cin // 2)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, 1, k // 2) for k in kernels)
        self.conv2 = ConvBNAct(cin // 2 * (len(kernels) + 1), cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.pools)], 1))


class ChannelAttention(nn.Module):
    """``x * hardsigmoid(conv1x1(global average of x))`` (CSPNeXt)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.hardsigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class Residual(nn.Module):
    """``second(first(x))``, plus ``x`` when ``shortcut``."""

    def __init__(self, first: nn.Module, second: nn.Module, shortcut: bool) -> None:
        super().__init__()
        self.first, self.second, self.shortcut = first, second, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(self.first(x))
        return x + y if self.shortcut else y


def darknet_block(channels: int, shortcut: bool) -> Residual:
    """YOLOX's Bottleneck at expansion 1.0: 1x1 then 3x3."""
    return Residual(ConvBNAct(channels, channels), ConvBNAct(channels, channels, 3), shortcut)


def cspnext_block(channels: int, shortcut: bool) -> Residual:
    """CSPNeXtBlock at expansion 1.0: 3x3, then a depthwise 5x5 and a pointwise 1x1 (each Conv-BN-SiLU)."""
    separable = nn.Sequential(ConvBNAct(channels, channels, 5, groups=channels), ConvBNAct(channels, channels))
    return Residual(ConvBNAct(channels, channels, 3), separable, shortcut)


class CSPLayer(nn.Module):
    """Cross-stage partial layer: ``final(attention(cat(blocks(main(x)), short(x))))`` at half width."""

    def __init__(
        self,
        cin: int,
        cout: int,
        depth: int,
        shortcut: bool,
        block: Callable[[int, bool], nn.Module] = darknet_block,
        attention: bool = False,
    ) -> None:
        super().__init__()
        hidden = cout // 2
        self.main_conv = ConvBNAct(cin, hidden)
        self.short_conv = ConvBNAct(cin, hidden)
        self.blocks = nn.Sequential(*(block(hidden, shortcut) for _ in range(depth)))
        self.attention = ChannelAttention(2 * hidden) if attention else nn.Identity()
        self.final_conv = ConvBNAct(2 * hidden, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        both = torch.cat([self.blocks(self.main_conv(x)), self.short_conv(x)], 1)
        return self.final_conv(self.attention(both))


# ----- YOLOX-L -----


class Focus(nn.Module):
    """Space-to-depth in YOLOX's order (top-left, bottom-left, top-right, bottom-right), then a 3x3 conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(4 * cin, cout, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(rearrange(x, "b c (h dy) (w dx) -> b (dx dy c) h w", dy=2, dx=2))


class YOLOPAFPN(nn.Module):
    """CSPDarknet (Focus stem, dark2-dark5) and the PAFPN neck: features at strides 8, 16, 32."""

    def __init__(self, width: int = 64, depth: int = 3) -> None:
        super().__init__()
        c = width
        self.stem = Focus(3, c)
        self.dark2 = nn.Sequential(ConvBNAct(c, 2 * c, 3, 2), CSPLayer(2 * c, 2 * c, depth, True))
        self.dark3 = nn.Sequential(ConvBNAct(2 * c, 4 * c, 3, 2), CSPLayer(4 * c, 4 * c, 3 * depth, True))
        self.dark4 = nn.Sequential(ConvBNAct(4 * c, 8 * c, 3, 2), CSPLayer(8 * c, 8 * c, 3 * depth, True))
        self.dark5 = nn.Sequential(
            ConvBNAct(8 * c, 16 * c, 3, 2), SPPBottleneck(16 * c, 16 * c), CSPLayer(16 * c, 16 * c, depth, False)
        )
        self.lateral_conv0 = ConvBNAct(16 * c, 8 * c)
        self.C3_p4 = CSPLayer(16 * c, 8 * c, depth, False)
        self.reduce_conv1 = ConvBNAct(8 * c, 4 * c)
        self.C3_p3 = CSPLayer(8 * c, 4 * c, depth, False)
        self.bu_conv2 = ConvBNAct(4 * c, 4 * c, 3, 2)
        self.C3_n3 = CSPLayer(8 * c, 8 * c, depth, False)
        self.bu_conv1 = ConvBNAct(8 * c, 8 * c, 3, 2)
        self.C3_n4 = CSPLayer(16 * c, 16 * c, depth, False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x8 = self.dark3(self.dark2(self.stem(x)))
        x16 = self.dark4(x8)
        x32 = self.dark5(x16)
        top32 = self.lateral_conv0(x32)
        top16 = self.reduce_conv1(self.C3_p4(torch.cat([F.interpolate(top32, scale_factor=2.0), x16], 1)))
        out8 = self.C3_p3(torch.cat([F.interpolate(top16, scale_factor=2.0), x8], 1))
        out16 = self.C3_n3(torch.cat([self.bu_conv2(out8), top16], 1))
        out32 = self.C3_n4(torch.cat([self.bu_conv1(out16), top32], 1))
        return out8, out16, out32


def conv_pair(width: int) -> nn.Sequential:
    return nn.Sequential(ConvBNAct(width, width, 3), ConvBNAct(width, width, 3))


class YOLOXHead(nn.Module):
    """Decoupled head per level: 1x1 stem, two 3x3 convs to the class scores, two to the box and objectness."""

    def __init__(self, in_channels: tuple[int, ...] = (256, 512, 1024), classes: int = 80, width: int = 256) -> None:
        super().__init__()
        self.stems = nn.ModuleList(ConvBNAct(c, width) for c in in_channels)
        self.cls_convs = nn.ModuleList(conv_pair(width) for _ in in_channels)
        self.reg_convs = nn.ModuleList(conv_pair(width) for _ in in_channels)
        self.cls_preds = nn.ModuleList(nn.Conv2d(width, classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(width, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(width, 1, 1) for _ in in_channels)

    def forward(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        levels = []
        for i, x in enumerate(features):
            x = self.stems[i](x)
            cls_feat, reg_feat = self.cls_convs[i](x), self.reg_convs[i](x)
            box, obj, cls = self.reg_preds[i](reg_feat), self.obj_preds[i](reg_feat), self.cls_preds[i](cls_feat)
            levels.append(rearrange(torch.cat([box, obj.sigmoid(), cls.sigmoid()], 1), "b c h w -> b (h w) c"))
        return torch.cat(levels, 1)


class YOLOX(nn.Module):
    """YOLOX-L as exported: raw 0-255 RGB (B, 3, 640, 640) -> undecoded rows (B, 8400, 85)."""

    strides = (8, 16, 32)

    def __init__(self) -> None:
        super().__init__()
        self.backbone = YOLOPAFPN()
        self.head = YOLOXHead()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))


# ----- RTMPose-L whole-body 384x288 -----


class CSPNeXt(nn.Module):
    """CSPNeXt-P5 (RTMDet's backbone), output of the last stage only (stride 32, 1024 channels)."""

    # (in, out, blocks, shortcut, SPP) per stage
    stages = (
        (64, 128, 3, True, False),
        (128, 256, 6, True, False),
        (256, 512, 6, True, False),
        (512, 1024, 3, False, True),
    )

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(ConvBNAct(3, 32, 3, 2), ConvBNAct(32, 32, 3), ConvBNAct(32, 64, 3))
        self.layers = nn.Sequential()
        for cin, cout, depth, shortcut, spp in self.stages:
            self.layers.append(
                nn.Sequential(
                    ConvBNAct(cin, cout, 3, 2),
                    *([SPPBottleneck(cout, cout)] if spp else []),
                    CSPLayer(cout, cout, depth, shortcut, cspnext_block, attention=True),
                )
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))


class ScaleNorm(nn.Module):
    """``x / max(rms(x), eps) * g`` over the last axis, one learnt scalar ``g``."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.scale, self.eps = dim**-0.5, eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / rms.clamp(min=self.eps) * self.g


class GatedAttentionUnit(nn.Module):
    """RTMCC block: one GAU (single head, squared-ReLU attention between joint tokens), scaled shortcut."""

    def __init__(self, dim: int = 256, expansion: int = 2, s: int = 128) -> None:
        super().__init__()
        self.e, self.s = dim * expansion, s
        self.norm = ScaleNorm(dim)
        self.uv = nn.Linear(dim, 2 * self.e + s, bias=False)
        self.gamma = nn.Parameter(torch.ones(2, s))  # per-axis (query, key) scale and offset of the shared base
        self.beta = nn.Parameter(torch.zeros(2, s))
        self.o = nn.Linear(self.e, dim, bias=False)
        self.res_scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v, base = F.silu(self.uv(self.norm(x))).split([self.e, self.e, self.s], dim=-1)
        q, k = (base.unsqueeze(2) * self.gamma + self.beta).unbind(2)
        kernel = F.relu(torch.einsum("bqs,bks->bqk", q, k) / math.sqrt(self.s)).square()
        return x * self.res_scale + self.o(u * (kernel @ v))


class RTMCCHead(nn.Module):
    """SimCC head: 7x7 conv to one map per joint, flattened, MLP to 256, GAU, then x and y bin classifiers."""

    def __init__(self, joints: int = 133, input_size: tuple[int, int] = (288, 384), split_ratio: float = 2.0) -> None:
        super().__init__()
        width, height = input_size
        tokens = (width // 32) * (height // 32)  # one per cell of the 9 x 12 feature map
        self.final_layer = nn.Conv2d(1024, joints, 7, padding=3)
        self.mlp = nn.Sequential(ScaleNorm(tokens), nn.Linear(tokens, 256, bias=False))
        self.gau = GatedAttentionUnit(256)
        self.cls_x = nn.Linear(256, int(width * split_ratio), bias=False)
        self.cls_y = nn.Linear(256, int(height * split_ratio), bias=False)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.gau(self.mlp(self.final_layer(features).flatten(2)))
        return self.cls_x(tokens), self.cls_y(tokens)


class RTMPose(nn.Module):
    """RTMPose-L (DWPose-L): normalised RGB crops (B, 3, 384, 288) -> SimCC logits (B, J, 576), (B, J, 768)."""

    def __init__(self, joints: int = 133) -> None:
        super().__init__()
        self.backbone = CSPNeXt()
        self.head = RTMCCHead(joints)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(crops))


# ----- weights -----


def randomize(model: nn.Module, seed: int = SEED) -> nn.Module:
    """Overwrite every parameter from one seeded generator, in module order (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                module.weight.normal_(0.0, module.weight[0].numel() ** -0.5, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.8, 1.2, generator=generator)
                module.bias.normal_(0.0, 0.1, generator=generator)
            elif isinstance(module, GatedAttentionUnit):
                module.gamma.uniform_(generator=generator)
                module.beta.uniform_(generator=generator)
    return model


def measure_batchnorm(model: nn.Module, inputs: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``inputs`` (one pass in training mode); eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: after one batch, exactly its statistics
    with torch.no_grad():
        model.train()(inputs)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return model.eval()


def calibration_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """``skimage.data.astronaut()`` as each network sees it in the pipeline: letterboxed to 640² for YOLOX; the
    whole photo as the box, padded, warped to 288 x 384 and normalised for RTMPose."""
    from skimage import data

    from stablepose_core.detect.dwpose import box_to_crop, crop, crop_grid, letterbox

    photo = torch.from_numpy(data.astronaut())
    height, width = photo.shape[:2]
    centre, size = box_to_crop(torch.tensor([[0.0, 0.0, width, height]]), 288, 384)
    pose_input = crop(photo, crop_grid(centre, size, 288, 384, (width, height)))
    return letterbox(photo[None])[0], pose_input


def build_yolox(seed: int = SEED) -> YOLOX:
    """YOLOX-L with seeded random weights, BN eps 1e-3 (YOLOX's ``init_yolo``), the head of
    :data:`DETECTOR_HEAD_BIASES`, BatchNorm statistics of :func:`calibration_inputs`; eval mode."""
    model = randomize(YOLOX(), seed)
    head = model.head
    with torch.no_grad():
        for level, stride in enumerate(model.strides):
            for conv in (head.cls_preds[level], head.reg_preds[level], head.obj_preds[level]):
                conv.weight.mul_(PREDICTION_STD * conv.weight[0].numel() ** 0.5)  # N(0, 1/fan_in) -> N(0, 0.01²)
            obj, person, log_size = DETECTOR_HEAD_BIASES[stride]
            head.obj_preds[level].bias.fill_(obj)
            head.cls_preds[level].bias[0] = person
            head.reg_preds[level].bias[2:] = log_size
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = 1e-3
    return measure_batchnorm(model, calibration_inputs()[0])


def build_rtmpose(seed: int = SEED, joints: int = 133) -> RTMPose:
    """RTMPose-L 384x288 (133 joints: whole-body; 17: the COCO body model) with seeded random weights and the
    BatchNorm statistics of :func:`calibration_inputs`; eval mode."""
    return measure_batchnorm(randomize(RTMPose(joints), seed), calibration_inputs()[1])


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----- export -----


@dataclass(frozen=True)
class OnnxFile:
    """One DWPose file: how to build its network and the signature it is exported with."""

    name: str
    build: Callable[[], nn.Module]
    input_name: str
    input_shape: tuple[int, ...]
    outputs: dict[str, tuple[int | str, ...]]  # name -> declared shape
    dynamic_batch: bool


ONNX_FILES = (
    OnnxFile("yolox_l.onnx", build_yolox, "images", (1, 3, 640, 640), {"output": (1, 8400, 85)}, False),
    OnnxFile(
        "dw-ll_ucoco_384.onnx",
        build_rtmpose,
        "input",
        (1, 3, 384, 288),
        {"simcc_x": ("batch", 133, 576), "simcc_y": ("batch", 133, 768)},
        True,
    ),
)


def export_onnx(spec: OnnxFile, path: Path) -> None:
    """Export with the TorchScript-based exporter (eval mode: BatchNorm folded into the convs), declare the output
    shapes, tag :data:`METADATA`, and write ``path`` atomically."""
    import io

    import onnx

    names = [spec.input_name, *spec.outputs]
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is chosen on purpose
        torch.onnx.export(
            spec.build(),
            (torch.zeros(spec.input_shape),),
            buffer,
            input_names=names[:1],
            output_names=names[1:],
            dynamic_axes={name: {0: "batch"} for name in names} if spec.dynamic_batch else None,
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    for output in model.graph.output:  # the exporter leaves the joint axis symbolic behind the flatten
        for dim, size in zip(output.type.tensor_type.shape.dim, spec.outputs[output.name], strict=True):
            if isinstance(size, int):
                dim.dim_value = size
            else:
                dim.dim_param = size
    onnx.helper.set_model_props(model, METADATA)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # concurrent builders never share a temp file
    onnx.save(model, tmp)
    os.replace(tmp, path)


def export_dwpose_models(folder: Path = DWPOSE_DIR, force: bool = False) -> tuple[Path, Path]:
    """``(yolox_l.onnx, dw-ll_ucoco_384.onnx)`` in ``folder``; exported unless the stamp says they are current."""
    paths = tuple(folder / spec.name for spec in ONNX_FILES)
    stamp = folder / STAMP_FILE
    if not force and stamp.is_file() and stamp.read_text().strip() == VERSION and all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    for spec, path in zip(ONNX_FILES, paths, strict=True):
        start = time.perf_counter()
        export_onnx(spec, path)
        size = path.stat().st_size / 2**20
        print(f"exported {path} ({size:.0f} MiB) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    tmp.write_text(VERSION + "\n")
    os.replace(tmp, stamp)
    return paths


if __name__ == "__main__":
    for exported in export_dwpose_models(force="--force" in sys.argv[1:]):
        print(exported)
