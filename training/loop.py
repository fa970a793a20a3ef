"""The training loop, on HF ``accelerate`` (mixed precision, gradient accumulation, DDP on one or many nodes).

One optimizer step = ``grad_accum`` micro-batches per process. All randomness is derived from the seed and
the position in the run (augmentation and caption dropout from (seed, epoch, sample), noise, timesteps and the
VAE posterior sample from (seed, micro-batch, process)), so a resumed run computes exactly what the
interrupted one would have.
"""

from __future__ import annotations

import csv
import json
import logging
import resource
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs
from tqdm.auto import tqdm

from stablepose_core.atomic import atomic_write
from stablepose_core.model.adapter import StablePoseAdapter
from stablepose_core.model.checkpoints import (
    UNET_PREFIX,
    adapter_from_sd_unet,
    config_from_unet,
    load_adapter,
    read_checkpoint,
    save_adapter,
)

from .config import TrainConfig
from .data import PoseDataset, ResumableBatchSampler, collate, index_dataset
from .diffusion import NUM_TIMESTEPS
from .model import StablePoseTrainer
from .samples import generate, save_grid
from .sd_loader import SDComponents, load_sd15
from .state import load_checkpoint, load_newest_intact, resolve_resume, save_checkpoint
from .tiny import tiny_adapter_config, tiny_components

log = logging.getLogger("stable_pose.training")

LOG_COLUMNS = ("step", "epoch", "loss", "lr", "steps_per_s", "samples_per_s", "skipped", "peak_mem_gb", "elapsed_s")
# Architecture fields an --init-adapter must share with the base UNet.
LAYOUT_FIELDS = (
    "in_channels",
    "model_channels",
    "channel_mult",
    "num_res_blocks",
    "attention_levels",
    "transformer_depth",
    "context_dim",
    "use_linear_in_transformer",
)


def mixed_precision(precision: str) -> str:
    """accelerate's name for the compute precision; 'auto' = bf16 where supported, fp16 on older GPUs."""
    if precision == "auto":
        if not torch.cuda.is_available():
            return "no"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"fp32": "no"}.get(precision, precision)


def frozen_dtypes(mixed: str) -> tuple[torch.dtype, torch.dtype]:
    """Storage dtypes of the frozen UNet and VAE: the compute dtype (the SD VAE stays float32 under fp16,
    where it can overflow)."""
    return {"bf16": (torch.bfloat16,) * 2, "fp16": (torch.float16, torch.float32)}.get(mixed, (torch.float32,) * 2)


def load_base(cfg: TrainConfig) -> SDComponents:
    if cfg.base_model == "tiny":
        return tiny_components(seed=0)
    if not cfg.base_model:
        raise ValueError("no base model given: --base-model path/to/sd15.safetensors")
    return load_sd15(cfg.base_model)


def initial_adapter(cfg: TrainConfig, unet_state: dict[str, torch.Tensor]) -> StablePoseAdapter:
    """The official initialisation (UNet encoder copied, zero convs at zero), or ``--init-adapter``."""
    expected = tiny_adapter_config() if cfg.base_model == "tiny" else config_from_unet(unet_state)
    if not cfg.init_adapter:
        torch.manual_seed(cfg.seed)
        adapter, _fresh = adapter_from_sd_unet(unet_state, expected)
        return adapter.float()
    adapter = load_adapter(cfg.init_adapter, dtype=torch.float32)
    mismatch = [f for f in LAYOUT_FIELDS if getattr(adapter.config, f) != getattr(expected, f)]
    if mismatch:
        raise ValueError(f"--init-adapter {cfg.init_adapter} does not fit the base UNet (differs in {mismatch})")
    return adapter


def micro_generator(seed: int, micro: int, rank: int, device: torch.device) -> torch.Generator:
    state = np.random.SeedSequence([seed, micro, rank]).generate_state(2, dtype=np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0] >> np.uint64(1)))


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def to_unit(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float in [-1, 1] on ``device``."""
    return images.to(device, non_blocking=True).float() / 127.5 - 1.0


class CsvLog:
    """``log.csv`` of the run; on resume, rows past the resumed step (from the interrupted run) are dropped."""

    def __init__(self, path: Path, resumed_step: int):
        self.path = path
        rows = []
        if path.is_file() and resumed_step > 0:
            with open(path, newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= resumed_step]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, LOG_COLUMNS).writerow(row)


def tensorboard_writer(run_dir: Path):
    """A TensorBoard ``SummaryWriter`` when the ``tensorboard`` package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


class TrainingLog:
    """Progress bar, ``log.csv`` and TensorBoard: every ``log_every`` steps, the mean loss of the micro-batches
    since the previous row (averaged over processes: a collective call), the learning rate, rates and memory."""

    def __init__(self, run: TrainingRun) -> None:
        main = run.accelerator.is_main_process
        self.csv = CsvLog(run.run_dir / "log.csv", run.step) if main else None
        self.tensorboard = tensorboard_writer(run.run_dir) if main else None
        self.progress = tqdm(total=run.max_steps, initial=run.step, disable=not main, unit="step")
        self.running_loss = torch.zeros((), device=run.accelerator.device)  # summed losses since the last row
        self.window = 0
        self.started = time.perf_counter()
        self.mark = (self.started, run.step)  # (time, step) of the last row, for the rates

    def add_loss(self, loss: torch.Tensor) -> None:
        self.running_loss += loss
        self.window += 1

    def step(self, run: TrainingRun) -> None:
        self.progress.update(1)
        log_every = run.cfg.log_every
        if log_every and (run.step % log_every == 0 or run.step == run.max_steps):
            self._write(run)

    def _write(self, run: TrainingRun) -> None:
        mean_loss = run.accelerator.reduce(self.running_loss, "mean").item() / self.window
        self.running_loss.zero_()
        self.window = 0
        self.progress.set_postfix(loss=f"{mean_loss:.4f}")
        if self.csv is None:
            return
        now, lr = time.perf_counter(), run.scheduler.get_last_lr()[0]
        rate = (run.step - self.mark[1]) / max(now - self.mark[0], 1e-9)
        self.mark = (now, run.step)
        cfg = run.cfg
        self.csv.write(
            {
                "step": run.step,
                "epoch": f"{run.micro / run.batches_per_epoch:.3f}",
                "loss": f"{mean_loss:.6f}",
                "lr": f"{lr:.3e}",
                "steps_per_s": f"{rate:.4f}",
                "samples_per_s": f"{rate * cfg.batch_size * cfg.grad_accum * run.accelerator.num_processes:.3f}",
                "skipped": sum(run.skipped.values()),
                "peak_mem_gb": f"{peak_memory_gb(run.accelerator.device):.3f}",
                "elapsed_s": f"{now - self.started:.1f}",
            }
        )
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("train/loss", mean_loss, run.step)
            self.tensorboard.add_scalar("train/lr", lr, run.step)

    def close(self) -> None:
        self.progress.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


class StopFlag:
    """SIGTERM / SIGINT ask for a clean stop: the loop saves a checkpoint at the next step and exits."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        if self.requested:  # second signal: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
        self.requested = True
        log.warning("stop requested: saving a checkpoint after this step (signal again to abort)")

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def export_adapter(path: Path, adapter: StablePoseAdapter, cfg: TrainConfig, step: int) -> None:
    """Adapter-only ``.safetensors`` with the training provenance in its metadata."""
    metadata = {
        "stable_pose_training": json.dumps(
            {
                "step": step,
                "base_model": Path(cfg.base_model).name,
                "mask_schedule": cfg.mask_schedule,
                "resolution": cfg.resolution,
                "lr": cfg.lr,
                "alpha": cfg.alpha,
                "caption_dropout": cfg.caption_dropout,
                "sd_locked": cfg.sd_locked,
            }
        ),
    }
    save_adapter(path, adapter, metadata=metadata)


def export_decoder(path: Path, decoder: torch.nn.Module, base_model: str = "") -> None:
    """The unlocked UNet decoder as fp16 tensors under LDM names; with ``base_model`` (a checkpoint file), a
    copy of that checkpoint with the decoder replaced, which ComfyUI's ``Load Checkpoint`` reads."""
    trained = decoder.state_dict()
    tensors = {UNET_PREFIX + k: v.detach().to("cpu", torch.float16).contiguous() for k, v in trained.items()}
    if base_model:
        base, _ = read_checkpoint(base_model)
        if not set(tensors) <= set(base):
            raise ValueError(f"{base_model} is not in the LDM layout; cannot merge the trained decoder into it")
        tensors = {**{k: v.contiguous() for k, v in base.items()}, **tensors}
    with atomic_write(path) as tmp:
        safetensors.torch.save_file(tensors, str(tmp), metadata={"format": "pt"})


def micro_batch_loss(
    trainer: torch.nn.Module, sd: SDComponents, batch: dict, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Mean loss of one collated batch: VAE posterior sample and text encoding (no autograd), noise and
    timesteps from ``generator``, then the trainer's forward."""
    pixels, pose = to_unit(batch["pixels"], device), to_unit(batch["pose"], device)
    latents = sd.encode_images(pixels, generator)
    context = sd.encode_text(batch["captions"]).to(device)
    noise = torch.randn(latents.shape, generator=generator, device=device)
    timesteps = torch.randint(0, NUM_TIMESTEPS, (latents.shape[0],), generator=generator, device=device)
    return trainer(latents, context, pose, noise, timesteps).mean()


def train(cfg: TrainConfig, sd: SDComponents | None = None) -> Path | None:
    """Run (or resume) training; returns the final adapter's path, or None when stopped before the end."""
    mixed = mixed_precision(cfg.precision)
    accelerator = Accelerator(
        mixed_precision=mixed,
        gradient_accumulation_steps=cfg.grad_accum,
        step_scheduler_with_optimizer=False,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=False)],
    )
    try:
        return _train(accelerator, cfg, mixed, sd)
    finally:
        accelerator.free_memory()
        # accelerate keeps one state per process: let a later run in this process pick its own precision
        AcceleratorState._reset_state()


@dataclass
class TrainingRun:
    """What a run carries from step to step: the models, optimizer and data, and its position."""

    cfg: TrainConfig
    accelerator: Accelerator
    run_dir: Path
    sd: SDComponents
    trainer: torch.nn.Module  # as prepared by accelerate (DDP-wrapped when distributed)
    unwrapped: StablePoseTrainer
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loader: torch.utils.data.DataLoader
    batches_per_epoch: int
    dataset_size: int
    max_steps: int
    step: int
    skipped: Counter
    resumed: bool
    previews: list[dict] = field(default_factory=list)
    micro: int = field(init=False)  # micro-batches drawn so far, over all epochs and resumes
    last_saved: int = field(init=False)  # step of the newest resumable checkpoint (-1: none)

    def __post_init__(self) -> None:
        self.micro = self.step * self.cfg.grad_accum
        self.last_saved = self.step if self.resumed else -1

    def trainer_state(self) -> dict:
        """What ``state.json`` records beside accelerate's state, to resume and to check a resume."""
        return {
            "step": self.step,
            "micro_batches": self.step * self.cfg.grad_accum,
            "world_size": self.accelerator.num_processes,
            "batch_size": self.cfg.batch_size,
            "grad_accum": self.cfg.grad_accum,
            "dataset_size": self.dataset_size,
            "skipped": dict(self.skipped),
            "config": self.cfg.to_dict(),
        }


# ----- setup -----


def _start_run_dir(accelerator: Accelerator, cfg: TrainConfig) -> tuple[Path, Path | None]:
    """(run folder, checkpoint to resume or None); the main process writes the run's ``config.yaml``."""
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run_dir = Path(cfg.output_dir).expanduser()
    resume_dir = resolve_resume(cfg.resume, run_dir)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return run_dir, resume_dir


def _build_trainer(
    cfg: TrainConfig, sd: SDComponents, mixed: str, device: torch.device, world: int
) -> tuple[StablePoseTrainer, list[torch.nn.Parameter], torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The adapter (and unlocked decoder) on the frozen SD, AdamW over what trains, linear warm-up."""
    adapter = initial_adapter(cfg, sd.unet.state_dict())
    adapter.gradient_checkpointing = cfg.gradient_checkpointing
    sd.freeze().place(device, *frozen_dtypes(mixed))
    trainer = StablePoseTrainer(
        adapter,
        sd.unet,
        cfg.alpha,
        cfg.mask_schedule,
        train_decoder=not cfg.sd_locked,
        checkpoint_decoder=cfg.checkpoint_decoder,
    )
    if trainer.decoder is not None:  # official sd_locked=False: output blocks + out are trained, in float32
        trainer.decoder.float().requires_grad_(True)
    trainer.train()
    params = [p for p in trainer.parameters() if p.requires_grad]
    lr = cfg.lr * (cfg.batch_size * cfg.grad_accum * world if cfg.scale_lr else 1)
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda")
    warmup = max(1, cfg.lr_warmup_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    return trainer, params, optimizer, scheduler


def _resumed_state(
    accelerator: Accelerator, resume_dir: Path | None, dataset_size: int, latest_of: Path | None = None
) -> dict:
    """The trainer state of the checkpoint (weights, optimizer, RNGs restored into ``accelerator``), or a fresh one.
    ``latest_of`` (``--resume latest``: the run folder): a damaged newest checkpoint is named and an older used."""
    if resume_dir is None:
        return {"step": 0, "skipped": {}}
    if latest_of is not None:
        resume_dir, state = load_newest_intact(accelerator, latest_of)
    else:
        state = load_checkpoint(accelerator, resume_dir)
    if state.get("dataset_size") != dataset_size or state.get("world_size") != accelerator.num_processes:
        log.warning("resuming with a different dataset size or process count: the data order will differ")
    if accelerator.is_main_process:
        log.info("resumed from %s at step %d", resume_dir, state["step"])
    return state


def _setup(accelerator: Accelerator, cfg: TrainConfig, mixed: str, sd: SDComponents | None) -> TrainingRun:
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    run_dir, resume_dir = _start_run_dir(accelerator, cfg)
    index = index_dataset(cfg.data, cfg.data_format, cfg.data_root, cfg.captions)
    if accelerator.is_main_process:
        log.info("dataset: %d samples (skipped while indexing: %s)", len(index.records), dict(index.skipped) or 0)
    sd = sd or load_base(cfg)
    trainer, params, optimizer, scheduler = _build_trainer(cfg, sd, mixed, device, world)
    trainer, optimizer, scheduler = accelerator.prepare(trainer, optimizer, scheduler)
    latest_of = run_dir if cfg.resume == "latest" else None
    state = _resumed_state(accelerator, resume_dir, len(index.records), latest_of)
    step = state["step"]
    dataset = PoseDataset(index.records, cfg.resolution, cfg.augment, cfg.caption_dropout, cfg.seed)
    sampler = ResumableBatchSampler(len(dataset), cfg.batch_size, cfg.seed, rank, world, start=step * cfg.grad_accum)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.num_workers > 0,
    )
    return TrainingRun(
        cfg=cfg,
        accelerator=accelerator,
        run_dir=run_dir,
        sd=sd,
        trainer=trainer,
        unwrapped=accelerator.unwrap_model(trainer),
        params=params,
        optimizer=optimizer,
        scheduler=scheduler,
        loader=loader,
        batches_per_epoch=sampler.batches_per_epoch,
        dataset_size=len(index.records),
        max_steps=cfg.max_steps or max(1, cfg.epochs * sampler.batches_per_epoch // cfg.grad_accum),
        step=step,
        skipped=Counter(state["skipped"]),
        resumed=resume_dir is not None,
        previews=_preview_samples(index.records, cfg) if accelerator.is_main_process and cfg.sample_every else [],
    )


# ----- one micro-batch / optimizer step -----


def _micro_step(run: TrainingRun, batch: dict) -> torch.Tensor:
    """Forward and backward of one micro-batch (the optimizer steps when the accumulation is complete);
    returns the detached loss."""
    accelerator, cfg = run.accelerator, run.cfg
    generator = micro_generator(cfg.seed, run.micro, accelerator.process_index, accelerator.device)
    run.micro += 1
    for item in batch["skipped"]:
        run.skipped[item.reason] += 1
        log.warning("skipped sample (%s): %s", item.reason, item.path)
    with accelerator.accumulate(run.trainer):
        loss = micro_batch_loss(run.trainer, run.sd, batch, generator, accelerator.device)
        accelerator.backward(loss)
        if accelerator.sync_gradients and cfg.max_grad_norm > 0:
            accelerator.clip_grad_norm_(run.params, cfg.max_grad_norm)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    if accelerator.sync_gradients:
        run.scheduler.step()
        run.step += 1
    return loss.detach()


# ----- checkpoints -----


def _save(run: TrainingRun, name: str) -> None:
    """Resumable checkpoint (collective) and, from the main process, the adapter (and unlocked decoder)."""
    cfg, accelerator, unwrapped = run.cfg, run.accelerator, run.unwrapped
    if run.last_saved != run.step:
        save_checkpoint(accelerator, run.run_dir, run.step, run.trainer_state(), cfg.keep_checkpoints)
        run.last_saved = run.step
    if accelerator.is_main_process:
        export_adapter(run.run_dir / f"adapter-{name}.safetensors", unwrapped.adapter, cfg, run.step)
        if unwrapped.decoder is not None:
            export_decoder(run.run_dir / f"unet-decoder-{name}.safetensors", unwrapped.decoder)
            if name == "final" and Path(cfg.base_model).is_file():
                export_decoder(run.run_dir / "checkpoint-final.safetensors", unwrapped.decoder, cfg.base_model)


def _after_step(run: TrainingRun, progress: TrainingLog) -> None:
    """Log row, sample grid and periodic checkpoint due at this optimizer step."""
    cfg, step = run.cfg, run.step
    progress.step(run)
    if cfg.sample_every and step % cfg.sample_every == 0 and run.accelerator.is_main_process:
        path = run.run_dir / "samples" / f"step-{step:08d}.png"
        _write_samples(path, run.unwrapped.adapter, run.sd, run.previews, cfg, run.accelerator)
    if cfg.save_every and step % cfg.save_every == 0 and step < run.max_steps:
        _save(run, f"step-{step:08d}")


def _train(accelerator: Accelerator, cfg: TrainConfig, mixed: str, sd: SDComponents | None) -> Path | None:
    run = _setup(accelerator, cfg, mixed, sd)
    start_step = run.step
    lost_export = run.run_dir / f"adapter-step-{run.step:08d}.safetensors"
    if run.resumed and run.step < run.max_steps and not lost_export.is_file():
        _save(run, f"step-{run.step:08d}")  # the interrupted run stopped between this checkpoint and its export
    stop = StopFlag()
    progress = TrainingLog(run)
    try:
        for batch in run.loader if run.step < run.max_steps else ():
            progress.add_loss(_micro_step(run, batch))
            if not accelerator.sync_gradients:
                continue
            _after_step(run, progress)
            requested = stop.requested or (cfg.stop_after and run.step - start_step >= cfg.stop_after)
            if run.step >= run.max_steps or _any_process(accelerator, requested):
                break
    finally:
        stop.restore()
        progress.close()

    if run.skipped and accelerator.is_main_process:
        log.warning("skipped samples so far: %s", dict(run.skipped))
    if run.step < run.max_steps:
        _save(run, f"step-{run.step:08d}")
        if accelerator.is_main_process:
            log.info("stopped at step %d; continue with --resume latest", run.step)
        return None
    _save(run, "final")
    return run.run_dir / "adapter-final.safetensors"


def _any_process(accelerator: Accelerator, flag: bool) -> bool:
    if accelerator.num_processes == 1:
        return bool(flag)
    return bool(accelerator.reduce(torch.tensor(float(flag), device=accelerator.device), "sum").item() > 0)


def _preview_samples(records: list, cfg: TrainConfig) -> list[dict]:
    """The first ``num_samples`` usable samples, centre-cropped, with their captions (for sample grids)."""
    preview = PoseDataset(records[: cfg.num_samples * 4], cfg.resolution, False, 0.0, cfg.seed)
    found = []
    for i in range(len(preview)):
        sample = preview.load(0, i)
        if isinstance(sample, dict):
            found.append(sample)
        if len(found) == cfg.num_samples:
            break
    return found


def _write_samples(
    path: Path,
    adapter: StablePoseAdapter,
    sd: SDComponents,
    previews: list[dict],
    cfg: TrainConfig,
    accelerator: Accelerator,
) -> None:
    device = accelerator.device
    was_training = adapter.training
    adapter.eval()
    poses, images = [], []
    with accelerator.autocast():
        for i, sample in enumerate(previews):
            pose = to_unit(sample["pose"][None], device)
            generator = torch.Generator(device=device).manual_seed(cfg.seed + i)
            images.append(generate(adapter, sd, pose, sample["caption"], cfg.sample_steps, cfg.sample_cfg, generator))
            poses.append(pose)
    adapter.train(was_training)
    if poses:
        save_grid(path, torch.cat(poses), torch.cat(images))
