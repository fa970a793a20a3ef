"""Training step throughput and peak memory: ours vs a straightforward re-implementation of the official step.

    python benchmarks/bench_training.py [--preset small] [--precision bf16] [--batch 2] [--steps 6]
    python benchmarks/bench_training.py --base-model sd15.safetensors --resolution 512 --batch 1   # on a GPU

Both variants train the same adapter on the same frozen models (``--preset tiny|small``: random SD-shaped
models of ``training/tiny.py``; ``--base-model``: a real SD1.5 checkpoint) with the same batches, and differ
only in how the step is computed. The baseline does what the released ``StablePose`` / Lightning step does
(re-implemented here from its description): every frozen weight kept in float32 under autocast, the UNet's
weights left trainable so its decoder accumulates weight gradients that nothing uses (only the adapter is in
the optimizer, so they are never cleared), gradient checkpointing in the adapter and the UNet decoder
(``use_checkpoint: True``), pose masks built per sample with torchvision's ``GaussianBlur`` and Python loops,
VAE and text encoder in float32 at every step. Ours is ``training.model.StablePoseTrainer`` as the training loop
runs it (frozen weights stored in the compute precision and never tracked by autograd, vectorised masks,
fused AdamW on CUDA). Each variant runs in its own process; peak memory is CUDA's peak allocation during the
steps on a GPU, and on the CPU the kernel's resident-set high-water mark during the steps (reset after
setup) above the resident size before the models were built.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import GaussianBlur

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stablepose_core.model.checkpoints import adapter_from_sd_unet, config_from_unet
from stablepose_core.poses.keypoints import PoseKeypoints
from stablepose_core.poses.skeleton import render_pose
from training.diffusion import NUM_TIMESTEPS, alphas_cumprod, pose_weighted_mse, q_sample
from training.loop import frozen_dtypes, micro_batch_loss
from training.model import StablePoseTrainer, unet_eps
from training.sd_loader import SDComponents, load_sd15
from training.tiny import tiny_adapter_config, tiny_components

PRESETS = {"tiny": (32, 64), "small": (64, 256)}  # model channels, text context size
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def rss_gb() -> float:
    """Current resident set size."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**30


def reset_peak_rss() -> None:
    """Restart the kernel's resident-set high-water mark (VmHWM) from the current size (Linux)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_gb() -> float:
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 2**20  # kB


def build(args: argparse.Namespace) -> tuple[SDComponents, torch.nn.Module]:
    if args.base_model:
        sd = load_sd15(args.base_model)
        config = config_from_unet(sd.unet.state_dict())
    else:
        channels, context = PRESETS[args.preset]
        sd = tiny_components(0, channels, context)
        config = tiny_adapter_config(channels, context)
    torch.manual_seed(0)
    adapter, _ = adapter_from_sd_unet(sd.unet.state_dict(), config)
    for p in adapter.parameters():  # nonzero zero-convs: gradients flow everywhere, as after a few steps
        p.data.add_(torch.randn_like(p) * 1e-3)
    return sd, adapter.float()


def batches(args: argparse.Namespace, count: int) -> list[dict]:
    """Random skeleton images and images that depend on them, as uint8, with captions."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        poses, pixels = [], []
        for _ in range(args.batch):
            points = np.zeros((1, 17, 3), np.float32)
            points[..., :2] = rng.uniform(8, args.resolution - 8, (1, 17, 2))
            points[..., 2] = 1.0
            pose = render_pose(PoseKeypoints(points, args.resolution, args.resolution))
            poses.append(pose)
            pixels.append((0.7 * pose + rng.uniform(0, 70, pose.shape)).astype(np.uint8))
        out.append(
            {
                "pixels": torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2),
                "pose": torch.from_numpy(np.stack(poses)).permute(0, 3, 1, 2),
                "captions": ["a dancer on a stage, photo"] * args.batch,
            }
        )
    return out


def official_masks(pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """As the released ``get_input``: per kernel a torchvision blur, per sample a loop marking the latent cells
    of pixels above -1. Returns PMSA masks (2, B, h, w) and the loss mask (B, 1, h, w) (the k=13 one)."""
    b, _, height, width = pose.shape
    layers = []
    for kernel in (23, 13):
        masks = torch.zeros(b, height // 8, width // 8, device=pose.device)
        blurred = GaussianBlur(kernel_size=(kernel, kernel), sigma=3)(pose.float())
        for i, image in enumerate(blurred):
            _, ys, xs = torch.where(image > -1)
            masks[i][ys // 8, xs // 8] = 1
        layers.append(masks)
    return torch.stack(layers).bool(), layers[-1][:, None]


def official_loss(
    sd: SDComponents,
    adapter: torch.nn.Module,
    batch: dict,
    generator: torch.Generator,
    device: torch.device,
    abar: torch.Tensor,
) -> torch.Tensor:
    """The released ``get_input`` + ``p_losses`` (frozen parts in float32 under autocast)."""
    pixels = batch["pixels"].to(device).float() / 127.5 - 1
    pose = batch["pose"].to(device).float() / 127.5 - 1
    with torch.no_grad():
        latents = sd.encode_images(pixels, generator)
        context = sd.encode_text(batch["captions"]).to(device)
        with torch.autocast(device.type, enabled=False):  # float32: a bf16 23×23 blur takes minutes on a CPU
            masks, loss_mask = official_masks(pose)
    noise = torch.randn(latents.shape, generator=generator, device=device)
    t = torch.randint(0, NUM_TIMESTEPS, (latents.shape[0],), generator=generator, device=device)
    x_t = q_sample(latents, t, noise, abar)
    residuals = adapter(x_t, t, context, pose_image=pose, masks=masks)
    eps = unet_eps(sd.unet, x_t, t, context, residuals, checkpoint_decoder=True)
    return pose_weighted_mse(eps, noise, loss_mask, 5.0).mean()


def make_step(variant: str, args: argparse.Namespace, sd: SDComponents, adapter: torch.nn.Module, device):
    dtype = DTYPES[args.precision]
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else nullcontext()
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    abar = alphas_cumprod().to(device)
    adapter.to(device).train()
    if variant == "official":
        sd.place(device, torch.float32, torch.float32)
        sd.unet.requires_grad_(True)  # the released model never freezes the UNet's requires_grad
        adapter.gradient_checkpointing = True
        optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-5)
    else:
        unet_dtype, vae_dtype = frozen_dtypes({"fp32": "no"}.get(args.precision, args.precision))
        sd.freeze().place(device, unet_dtype, vae_dtype)
        adapter.gradient_checkpointing = not args.no_checkpointing
        trainer = StablePoseTrainer(adapter, sd.unet, alpha=5.0)
        if dtype != torch.float32:  # as accelerate's prepare() wraps the model's forward
            trainer.forward = torch.autocast(device.type, dtype=dtype)(trainer.forward)
        optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-5, fused=device.type == "cuda")

    def step(batch: dict, generator: torch.Generator) -> float:
        if variant == "official":
            with autocast:  # Lightning's precision plugin wraps the whole training_step
                loss = official_loss(sd, adapter, batch, generator, device, abar)
        else:
            loss = micro_batch_loss(trainer, sd, batch, generator, device)  # what the training loop runs
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)  # the adapter's; the official decoder grads stay allocated
        return loss.item()

    return step


def run_variant(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    data = batches(args, args.steps + args.warmup)
    base_rss = rss_gb()
    sd, adapter = build(args)
    step = make_step(args.variant, args, sd, adapter, device)
    generator = torch.Generator(device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    reset_peak_rss()
    for i, batch in enumerate(data):
        if i == args.warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        generator.manual_seed(i)
        loss = step(batch, generator)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else peak_rss_gb() - base_rss
    return {"variant": args.variant, "steps_per_s": args.steps / elapsed, "peak_gb": peak, "loss": loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--base-model", default="", help="a real SD1.5 checkpoint instead of a preset")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--precision", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per variant; the best is kept")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    parser.add_argument("--no-checkpointing", action="store_true", help="ours without adapter checkpointing")
    parser.add_argument("--variant", choices=("official", "ours"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    runs: dict[str, list[dict]] = {"official": [], "ours": []}
    for _ in range(args.repeat):  # alternate, so both variants see the same machine load
        for variant, results in runs.items():
            command = [sys.executable, __file__, *sys.argv[1:], "--variant", variant]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
    what = args.base_model or f"preset {args.preset}"
    print(
        f"{what}, {args.resolution}² px, batch {args.batch}, {args.precision}, {args.device}, "
        f"{torch.get_num_threads()} threads, best of {args.repeat} runs of {args.steps} steps"
    )
    best = {}
    for variant, results in runs.items():
        speeds = sorted(r["steps_per_s"] for r in results)
        best[variant] = {"steps_per_s": speeds[-1], "peak_gb": min(r["peak_gb"] for r in results)}
        print(
            f"  {variant:8s}  {speeds[-1]:7.3f} steps/s (median {speeds[len(speeds) // 2]:.3f})   "
            f"peak {best[variant]['peak_gb']:6.3f} GB   loss {results[-1]['loss']:.4f}"
        )
    official, ours = best["official"], best["ours"]
    print(
        f"  ours / official: throughput ×{ours['steps_per_s'] / official['steps_per_s']:.2f}, "
        f"peak memory ×{ours['peak_gb'] / official['peak_gb']:.2f}  (targets ≥ 1.5, ≤ 0.6)"
    )


if __name__ == "__main__":
    main()
