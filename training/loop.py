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
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs
from tqdm.auto import tqdm

from stablepose_core.adapter import StablePoseAdapter
from stablepose_core.checkpoints import (
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
    tmp = path.with_name(f".{path.name}.tmp")
    safetensors.torch.save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)


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


def _train(accelerator: Accelerator, cfg: TrainConfig, mixed: str, sd: SDComponents | None) -> Path | None:
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    run_dir = Path(cfg.output_dir).expanduser()
    resume_dir = resolve_resume(cfg.resume, run_dir)
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")

    index = index_dataset(cfg.data, cfg.data_format, cfg.data_root, cfg.captions)
    if accelerator.is_main_process:
        log.info("dataset: %d samples (skipped while indexing: %s)", len(index.records), dict(index.skipped) or 0)

    sd = sd or load_base(cfg)
    adapter = initial_adapter(cfg, sd.unet.state_dict())
    adapter.gradient_checkpointing = cfg.gradient_checkpointing
    unet_dtype, vae_dtype = frozen_dtypes(mixed)
    sd.freeze().place(device, unet_dtype, vae_dtype)
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
    trainer, optimizer, scheduler = accelerator.prepare(trainer, optimizer, scheduler)

    state = {"step": 0, "skipped": {}}
    if resume_dir is not None:
        if cfg.resume == "latest":  # a damaged newest checkpoint is named and the one before it used
            resume_dir, state = load_newest_intact(accelerator, run_dir)
        else:
            state = load_checkpoint(accelerator, resume_dir)
        if state.get("dataset_size") != len(index.records) or state.get("world_size") != world:
            log.warning("resuming with a different dataset size or process count: the data order will differ")
        if accelerator.is_main_process:
            log.info("resumed from %s at step %d", resume_dir, state["step"])
    step = state["step"]
    skipped = Counter(state["skipped"])

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
    max_steps = cfg.max_steps or max(1, cfg.epochs * sampler.batches_per_epoch // cfg.grad_accum)
    previews = _preview_samples(index.records, cfg) if accelerator.is_main_process and cfg.sample_every else []
    csv_log = CsvLog(run_dir / "log.csv", step) if accelerator.is_main_process else None
    tensorboard = tensorboard_writer(run_dir) if accelerator.is_main_process else None
    unwrapped: StablePoseTrainer = accelerator.unwrap_model(trainer)

    def trainer_state() -> dict:
        return {
            "step": step,
            "micro_batches": step * cfg.grad_accum,
            "world_size": world,
            "batch_size": cfg.batch_size,
            "grad_accum": cfg.grad_accum,
            "dataset_size": len(index.records),
            "skipped": dict(skipped),
            "config": cfg.to_dict(),
        }

    def save(name: str) -> None:
        """Resumable checkpoint (collective) and, from the main process, the adapter (and unlocked decoder)."""
        nonlocal last_saved
        if last_saved != step:
            save_checkpoint(accelerator, run_dir, step, trainer_state(), cfg.keep_checkpoints)
            last_saved = step
        if accelerator.is_main_process:
            export_adapter(run_dir / f"adapter-{name}.safetensors", unwrapped.adapter, cfg, step)
            if unwrapped.decoder is not None:
                export_decoder(run_dir / f"unet-decoder-{name}.safetensors", unwrapped.decoder)
                if name == "final" and Path(cfg.base_model).is_file():
                    export_decoder(run_dir / "checkpoint-final.safetensors", unwrapped.decoder, cfg.base_model)

    stop = StopFlag()
    start_step, started, mark = step, time.perf_counter(), (time.perf_counter(), step)
    running_loss, window = torch.zeros((), device=device), 0  # summed micro-batch losses since the last log
    progress = tqdm(total=max_steps, initial=step, disable=not accelerator.is_main_process, unit="step")
    last_saved = step if resume_dir is not None else -1
    if resume_dir is not None and step < max_steps and not (run_dir / f"adapter-step-{step:08d}.safetensors").is_file():
        save(f"step-{step:08d}")  # the interrupted run stopped between this checkpoint and its adapter export
    micro = step * cfg.grad_accum
    try:
        for batch in loader if step < max_steps else ():
            generator = micro_generator(cfg.seed, micro, rank, device)
            micro += 1
            for item in batch["skipped"]:
                skipped[item.reason] += 1
                log.warning("skipped sample (%s): %s", item.reason, item.path)
            with accelerator.accumulate(trainer):
                loss = micro_batch_loss(trainer, sd, batch, generator, device)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            running_loss += loss.detach()
            window += 1
            if not accelerator.sync_gradients:
                continue
            scheduler.step()
            step += 1
            progress.update(1)
            if cfg.log_every and (step % cfg.log_every == 0 or step == max_steps):
                mean_loss = accelerator.reduce(running_loss, "mean").item() / window
                running_loss.zero_()
                window = 0
                progress.set_postfix(loss=f"{mean_loss:.4f}")
                if accelerator.is_main_process:
                    now = time.perf_counter()
                    rate = (step - mark[1]) / max(now - mark[0], 1e-9)
                    mark = (now, step)
                    row = {
                        "step": step,
                        "epoch": f"{micro / sampler.batches_per_epoch:.3f}",
                        "loss": f"{mean_loss:.6f}",
                        "lr": f"{scheduler.get_last_lr()[0]:.3e}",
                        "steps_per_s": f"{rate:.4f}",
                        "samples_per_s": f"{rate * cfg.batch_size * cfg.grad_accum * world:.3f}",
                        "skipped": sum(skipped.values()),
                        "peak_mem_gb": f"{peak_memory_gb(device):.3f}",
                        "elapsed_s": f"{now - started:.1f}",
                    }
                    csv_log.write(row)
                    if tensorboard is not None:
                        tensorboard.add_scalar("train/loss", mean_loss, step)
                        tensorboard.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
            if cfg.sample_every and step % cfg.sample_every == 0 and accelerator.is_main_process:
                _write_samples(
                    run_dir / "samples" / f"step-{step:08d}.png", unwrapped.adapter, sd, previews, cfg, accelerator
                )
            if cfg.save_every and step % cfg.save_every == 0 and step < max_steps:
                save(f"step-{step:08d}")
            requested = stop.requested or (cfg.stop_after and step - start_step >= cfg.stop_after)
            if step >= max_steps or _any_process(accelerator, requested):
                break
    finally:
        stop.restore()
        progress.close()
        if tensorboard is not None:
            tensorboard.close()

    if skipped and accelerator.is_main_process:
        log.warning("skipped samples so far: %s", dict(skipped))
    if step < max_steps:
        save(f"step-{step:08d}")
        if accelerator.is_main_process:
            log.info("stopped at step %d; continue with --resume latest", step)
        return None
    save("final")
    return run_dir / "adapter-final.safetensors"


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
