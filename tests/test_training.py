"""Training on CPU with the tiny SD-shaped model and a synthetic dataset: the objective, the UNet pass, the loss
falling, resume determinism, the unlocked decoder and the exports."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch

from harness.synthetic_data import write_synthetic_dataset
from stablepose_core.model.adapter import control_dict
from stablepose_core.model.checkpoints import UNET_PREFIX, adapter_from_sd_unet, load_adapter
from stablepose_host import import_comfy
from training.config import TrainConfig
from training.data import PoseDataset, collate, index_dataset
from training.diffusion import alphas_cumprod, pose_weighted_mse
from training.loop import export_decoder, initial_adapter, train
from training.model import StablePoseTrainer, unet_eps
from training.state import list_checkpoints
from training.tiny import tiny_adapter_config, tiny_components


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model's ops are too small for two threads to help; one avoids thread contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("training") / "data", count=12, corrupt=1)


def tiny_config(dataset: Path, output: Path, **overrides) -> TrainConfig:
    base = TrainConfig(
        base_model="tiny",
        data=str(dataset),
        output_dir=str(output),
        resolution=64,
        batch_size=2,
        grad_accum=2,
        lr=1e-3,
        precision="fp32",
        save_every=0,
        sample_every=0,
        log_every=1,
        num_workers=0,
    )
    return replace(base, **overrides)


def adapter_tensors(path: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path))


# --- objective ------------------------------------------------------------------------------------------------------
def test_pose_region_weighting():
    pred, target = torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2)
    target[:, :, 0, 0] = 3.0  # squared error 9 in one cell, 1 elsewhere
    mask = torch.zeros(1, 1, 2, 2)
    mask[:, :, 0, 0] = 1.0
    # official: mean(loss·mask·α + loss·(1-mask)) = (9·5 + 1 + 1 + 1) / 4
    assert pose_weighted_mse(pred, target, mask, alpha=5.0).item() == pytest.approx((45 + 3) / 4)
    assert pose_weighted_mse(pred, target, mask, alpha=1.0).item() == pytest.approx((9 + 3) / 4)
    assert pose_weighted_mse(pred, target, torch.ones_like(mask), alpha=5.0).item() == pytest.approx(5 * 12 / 4)


def test_noise_schedule_is_comfyui_sd15():
    sampling = import_comfy("comfy.model_sampling").ModelSamplingDiscrete()
    abar = alphas_cumprod()
    torch.testing.assert_close(((1 - abar) / abar).sqrt().float(), sampling.sigmas.float(), rtol=1e-5, atol=0)


def test_unet_pass_equals_comfyui_with_the_control_dict():
    torch.manual_seed(0)
    sd = tiny_components(0)
    adapter, _ = adapter_from_sd_unet(sd.unet.state_dict(), tiny_adapter_config())
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([10, 700])
    context = sd.encode_text(["a dancer", ""])
    residuals = [torch.randn_like(r) for r in adapter(x, t, context, pose_image=torch.rand(2, 3, 64, 64) * 2 - 1)]
    reference = sd.unet(x, timesteps=t, context=context, control=control_dict([r.clone() for r in residuals]))
    torch.testing.assert_close(unet_eps(sd.unet, x, t, context, residuals), reference, rtol=0, atol=0)

    grads = []
    for recompute in (False, True):
        leaves = [r.clone().requires_grad_(True) for r in residuals]
        unet_eps(sd.unet, x, t, context, leaves, checkpoint_decoder=recompute).square().mean().backward()
        grads.append([leaf.grad for leaf in leaves])
    for plain, recomputed in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, plain)
    assert all(p.grad is None for p in sd.unet.parameters()), "frozen weights never get gradients"


def test_adapter_gradient_checkpointing_keeps_the_gradients():
    torch.manual_seed(0)
    sd = tiny_components(0)
    adapter, _ = adapter_from_sd_unet(sd.unet.state_dict(), tiny_adapter_config())
    for p in adapter.parameters():  # nonzero zero-convs, so every parameter gets a gradient
        p.data.add_(torch.randn_like(p) * 0.01)
    trainer = StablePoseTrainer(adapter, sd.unet, alpha=5.0).train()
    pose = -torch.ones(2, 3, 64, 64)
    pose[:, :, 16:48, 24:32] = 0.6  # drawn pose: the PMSA masks are partial
    inputs = (torch.randn(2, 4, 8, 8), sd.encode_text(["a", ""]), pose, torch.randn(2, 4, 8, 8), torch.tensor([3, 900]))
    grads = []
    for recompute in (False, True):
        adapter.gradient_checkpointing = recompute
        adapter.zero_grad()
        trainer(*inputs).mean().backward()
        grads.append({n: p.grad.clone() for n, p in adapter.named_parameters()})
    for name, plain in grads[0].items():
        torch.testing.assert_close(grads[1][name], plain, msg=name)


# --- training runs ------------------------------------------------------------------------------------------------
def fixed_eval_loss(adapter, sd, records) -> float:
    """Loss on a fixed batch (no augmentation, fixed noise and timesteps spread over the schedule)."""
    dataset = PoseDataset(records, 64, False, 0.0, seed=0)
    batch = collate([{**dataset.load(0, i), "skipped": []} for i in range(8)])
    generator = torch.Generator().manual_seed(123)
    latents = sd.encode_images(batch["pixels"].float() / 127.5 - 1, generator)
    noise = torch.randn(latents.shape, generator=generator)
    trainer = StablePoseTrainer(adapter.float(), sd.unet, alpha=5.0).eval()
    with torch.no_grad():
        loss = trainer(
            latents,
            sd.encode_text(batch["captions"]),
            batch["pose"].float() / 127.5 - 1,
            noise,
            torch.linspace(50, 950, 8).long(),
        )
    return loss.mean().item()


@pytest.mark.slow
def test_loss_falls_and_the_output_is_a_loadable_adapter(dataset, tmp_path):
    cfg = tiny_config(
        dataset,
        tmp_path / "run",
        max_steps=30,
        batch_size=4,
        grad_accum=1,
        sample_every=30,
        num_samples=2,
        sample_steps=3,
    )
    final = train(cfg, sd=tiny_components(0))
    assert final == tmp_path / "run" / "adapter-final.safetensors"

    sd = tiny_components(0)
    records = [r for r in index_dataset(dataset).records if r.image.name != "img012.png"]
    before = fixed_eval_loss(initial_adapter(cfg, sd.unet.state_dict()), sd, records)
    trained = load_adapter(final)
    after = fixed_eval_loss(trained, sd, records)
    assert after < 0.85 * before, f"loss {before:.3f} -> {after:.3f}"

    assert trained.config == tiny_adapter_config()
    with safetensors.safe_open(str(final), "pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["stable_pose_training"])["step"] == 30
    assert all(t.dtype == torch.float32 for t in adapter_tensors(final).values())
    state = json.loads((list_checkpoints(tmp_path / "run")[-1][1] / "trainer_state.json").read_text())
    assert state["step"] == 30 and state["skipped"]["unreadable image"] >= 1  # the corrupt image, every epoch
    log_rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log_rows) == 31 and log_rows[0].startswith("step,epoch,loss")
    assert (tmp_path / "run" / "samples" / "step-00000030.png").is_file()


@pytest.mark.slow
def test_resumed_runs_reach_the_same_weights(dataset, tmp_path):
    cfg = tiny_config(dataset, tmp_path / "straight", max_steps=8, save_every=3)
    train(cfg, sd=tiny_components(0))
    expected = adapter_tensors(tmp_path / "straight" / "adapter-final.safetensors")

    # a run stopped after 5 steps (checkpoints at 3 and 5), continued from its latest checkpoint
    stopped = replace(cfg, output_dir=str(tmp_path / "stopped"), stop_after=5, num_workers=2)
    assert train(stopped, sd=tiny_components(0)) is None
    assert [s for s, _ in list_checkpoints(tmp_path / "stopped")] == [3, 5]
    # a run killed after its step-3 checkpoint: everything after it is lost and recomputed
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "stopped" / "checkpoints" / "step_00000003", killed / "checkpoints" / "step_00000003")
    (tmp_path / "stopped" / "checkpoints" / ".tmp-step_00000099").mkdir()  # a save killed mid-way: ignored
    train(replace(stopped, resume="latest", stop_after=0), sd=tiny_components(0))
    resumed = adapter_tensors(tmp_path / "stopped" / "adapter-final.safetensors")

    train(replace(cfg, output_dir=str(killed), resume="latest"), sd=tiny_components(0))
    recomputed = adapter_tensors(killed / "adapter-final.safetensors")

    for other in (resumed, recomputed):
        assert other.keys() == expected.keys()
        for key, value in expected.items():
            assert torch.equal(other[key], value), key
    assert (killed / "log.csv").read_text().count("\n") == 1 + 5  # header + steps 4..8


def test_unlocked_decoder_is_trained_and_exported(dataset, tmp_path):
    sd = tiny_components(0)
    base = {UNET_PREFIX + k: v.half() for k, v in sd.unet.state_dict().items()}
    base["first_stage_model.decoder.conv_out.bias"] = torch.ones(3)
    train(tiny_config(dataset, tmp_path / "run", max_steps=2, sd_locked=False), sd=sd)
    decoder = adapter_tensors(tmp_path / "run" / "unet-decoder-final.safetensors")
    assert decoder and all(k.startswith((UNET_PREFIX + "output_blocks.", UNET_PREFIX + "out.")) for k in decoder)
    moved = [k for k, v in decoder.items() if not torch.equal(v, base[k])]
    assert moved, "the decoder weights were trained"
    assert (tmp_path / "run" / "adapter-final.safetensors").is_file()

    # merged into a copy of the base checkpoint: trained decoder, everything else as it was
    safetensors.torch.save_file(base, str(tmp_path / "base.safetensors"))
    merged_path = tmp_path / "merged.safetensors"
    export_decoder(
        merged_path,
        StablePoseTrainer(
            load_adapter(tmp_path / "run" / "adapter-final.safetensors"), sd.unet, 5.0, train_decoder=True
        ).decoder,
        str(tmp_path / "base.safetensors"),
    )
    merged = adapter_tensors(merged_path)
    assert merged.keys() == base.keys()
    assert all(torch.equal(merged[k], decoder[k]) for k in decoder)
    assert torch.equal(
        merged["model.diffusion_model.input_blocks.0.0.weight"], base["model.diffusion_model.input_blocks.0.0.weight"]
    )
