"""Training options: one dataclass, read from a YAML file and overridden by command-line flags.

Every field is both a YAML key (``batch_size: 2``) and a flag (``--batch-size 2``); defaults are the released
recipe (``configs/stable_pose/humanart.yaml`` and ``train.py`` of the official code) made practical on one
24 GB GPU (micro-batch 1 × 4 accumulation = the official per-GPU batch of 4).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from stablepose_core.model.masks import SCHEDULE_ALIASES, SCHEDULES, TRAINING, schedule_name

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DATA_FORMATS = ("auto", "folder", "humanart")
# Earlier names of the schedules, still accepted: the core's aliases, except that "released" in a training config
# meant the official training masks (in the nodes it meant the evaluation masks).
TRAINING_SCHEDULE_ALIASES = {**SCHEDULE_ALIASES, "released": TRAINING}


def _opt(default: Any, help: str, group: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"help": help, "group": group, "choices": choices})


@dataclass
class TrainConfig:
    """All options of a training run (see ``docs/training.md``)."""

    # model
    base_model: str = _opt(
        "",
        "SD1.5 checkpoint (.safetensors/.ckpt, as ComfyUI loads it); 'tiny' builds a small random "
        "SD-shaped model for smoke tests",
        "model",
    )
    init_adapter: str = _opt(
        "", "start from this adapter (.safetensors/.pth/.ckpt) instead of the UNet-encoder initialisation", "model"
    )
    sd_locked: bool = _opt(
        True,
        "keep the UNet decoder frozen (official sd_locked); --no-sd-locked trains "
        "the decoder too and saves it beside the adapter",
        "model",
    )
    # data
    data: str = _opt("", "dataset: a folder (images + COCO keypoints) or a Human-Art/HumanSD mapping .json", "data")
    data_format: str = _opt("auto", "dataset layout", "data", DATA_FORMATS)
    data_root: str = _opt(
        "", "base folder the Human-Art mapping's paths are relative to (default: the mapping file's folder)", "data"
    )
    captions: str = _opt("", "captions file for a folder dataset (.json {file: caption} or .jsonl)", "data")
    resolution: int = _opt(512, "training size in px (square, multiple of 64)", "data")
    augment: bool = _opt(True, "official augmentation (flip, rotate, crop, colour); off = resize + centre crop", "data")
    num_workers: int = _opt(4, "data-loader worker processes", "data")
    # recipe
    lr: float = _opt(1e-5, "AdamW learning rate (official)", "recipe")
    scale_lr: bool = _opt(False, "multiply lr by batch size × accumulation × processes (official --scale_lr)", "recipe")
    weight_decay: float = _opt(0.01, "AdamW weight decay (torch default, as the official optimizer)", "recipe")
    lr_warmup_steps: int = _opt(0, "linear learning-rate warm-up steps (official: none)", "recipe")
    max_grad_norm: float = _opt(0.0, "clip the gradient norm to this (0 = off, official)", "recipe")
    alpha: float = _opt(5.0, "loss weight α inside the pose mask: loss·mask·α + loss·(1-mask)", "recipe")
    caption_dropout: float = _opt(0.5, "probability of training a sample with the empty caption", "recipe")
    mask_schedule: str = _opt(
        TRAINING,
        "PMSA masks, named as in Apply Adapter (Stable-Pose): 'training' = official training (get_input), "
        "'evaluation' = the paper's coarse-to-fine masks of the authors' evaluation, 'unmasked' = no masks (earlier "
        "names: released and released_train = training, paper = evaluation)",
        "recipe",
        SCHEDULES,
    )
    # schedule
    max_steps: int = _opt(0, "optimizer steps to train (0 = use --epochs)", "schedule")
    epochs: int = _opt(1, "passes over the dataset when --max-steps is 0", "schedule")
    batch_size: int = _opt(1, "micro-batch per process", "schedule")
    grad_accum: int = _opt(4, "micro-batches per optimizer step", "schedule")
    seed: int = _opt(23, "seed of noise, timesteps, augmentation, shuffling (official default 23)", "schedule")
    # performance
    precision: str = _opt(
        "auto",
        "compute precision; 'auto' = bf16 where supported, else fp16 on CUDA, fp32 on CPU",
        "performance",
        PRECISIONS,
    )
    gradient_checkpointing: bool = _opt(True, "recompute adapter activations in the backward pass", "performance")
    checkpoint_decoder: bool = _opt(
        False,
        "also recompute the UNet decoder's activations (saves memory at higher resolutions or batch sizes, costs time)",
        "performance",
    )
    # output
    output_dir: str = _opt("output/stable_pose_training", "run folder: checkpoints, adapters, samples, logs", "output")
    save_every: int = _opt(
        1000, "save a resumable checkpoint and an adapter every N steps (0 = only at the end)", "output"
    )
    keep_checkpoints: int = _opt(
        2, "newest resumable checkpoints kept, older ones deleted (0 = keep all; adapters are always kept)", "output"
    )
    sample_every: int = _opt(500, "write a pose | generated sample grid every N steps (0 = never)", "output")
    num_samples: int = _opt(4, "rows of a sample grid", "output")
    sample_steps: int = _opt(20, "DDIM steps of the sample grids", "output")
    sample_cfg: float = _opt(7.5, "classifier-free guidance scale of the sample grids", "output")
    log_every: int = _opt(10, "log the loss to log.csv (and TensorBoard when installed) every N steps", "output")
    resume: str = _opt(
        "", "continue a run: 'latest' (newest checkpoint in --output-dir) or a checkpoint folder", "output"
    )
    stop_after: int = _opt(
        0, "save a checkpoint and exit after N steps of this invocation (time-sliced jobs)", "output"
    )

    def __post_init__(self) -> None:
        self.mask_schedule = schedule_name(self.mask_schedule, TRAINING_SCHEDULE_ALIASES)
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ValueError(f"{f.name} must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}")
        positive = ("resolution", "batch_size", "grad_accum", "epochs", "sample_steps", "num_samples")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        for name in (
            "max_steps",
            "save_every",
            "sample_every",
            "log_every",
            "keep_checkpoints",
            "stop_after",
            "num_workers",
            "lr_warmup_steps",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.resolution % 64:
            raise ValueError(f"resolution must be a multiple of 64 px, got {self.resolution}")
        if not 0.0 <= self.caption_dropout <= 1.0:
            raise ValueError(f"caption_dropout must be in [0, 1], got {self.caption_dropout}")
        if self.lr <= 0 or self.alpha <= 0:
            raise ValueError("lr and alpha must be > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _field_type(f: dataclasses.Field) -> type:
    hints = typing.get_type_hints(TrainConfig)
    kind = hints[f.name]
    if isinstance(kind, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is bool and isinstance(value, bool):
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"option {name!r} must be a {kind.__name__}, got {value!r}")


def from_dict(values: dict[str, Any]) -> TrainConfig:
    """Build a config from a mapping (YAML keys); unknown keys are an error naming the valid ones."""
    by_name = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(by_name)}")
    return TrainConfig(**{k: _coerce(k, v, _field_type(by_name[k])) for k, v in values.items()})


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config is a mapping of option: value, got {type(values).__name__}")
    return values


def build_parser(description: str) -> argparse.ArgumentParser:
    """Flags for every option; an option not given on the command line keeps its YAML or default value."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="YAML file of options (flags override it)")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in fields(TrainConfig):
        group_name = f.metadata["group"]
        group = groups.get(group_name) or groups.setdefault(group_name, parser.add_argument_group(group_name))
        flag = "--" + f.name.replace("_", "-")
        kind = _field_type(f)
        shown = "" if f.default == "" else f" (default: {f.default!r})"
        help_text = f"{f.metadata['help']}{shown}".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": f.name, "help": help_text, "default": argparse.SUPPRESS}
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        else:
            choices = f.metadata.get("choices")  # checked by TrainConfig, whose messages say what to write instead
            metavar = "{" + ",".join(choices) + "}" if choices else kind.__name__.upper()
            group.add_argument(flag, type=kind, metavar=metavar, **kwargs)
    return parser


def parse_args(argv: list[str] | None = None, description: str = __doc__ or "") -> TrainConfig:
    """Defaults < ``--config`` YAML < flags."""
    parser = build_parser(description)
    args = vars(parser.parse_args(argv))
    config_path = args.pop("config", None)
    values = load_yaml(config_path) if config_path else {}
    values.update(args)
    try:
        return from_dict(values)
    except ValueError as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits
