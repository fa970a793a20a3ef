"""The adapter at any size, batch and precision; PMSA attention details."""

import pytest
import torch

from stablepose_core import pmsa
from stablepose_core.adapter import AdapterConfig, StablePoseAdapter, control_dict
from stablepose_core.masks import MaskSettings, pmsa_masks
from tools.reference_weights import sample_pose_image, seeded_state_dict

SMALL = AdapterConfig(
    model_channels=32,
    channel_mult=(1, 2, 2),
    num_res_blocks=2,
    attention_levels=(0, 1),
    num_heads=4,
    context_dim=64,
    inject_channels=(32,),
    vit_dim=128,
    vit_reduced_channels=32,
    vit_mlp_dim=64,
)


@pytest.fixture(scope="module")
def adapter():
    model = StablePoseAdapter(SMALL).eval()
    model.load_state_dict(seeded_state_dict(model))
    return model


def _run(adapter, height, width, batch=2, dtype=torch.float32):
    pose = sample_pose_image(height, width).repeat(batch, 1, 1, 1)
    masks = pmsa_masks(pose, torch.arange(batch) % 2 == 0, MaskSettings())
    x = torch.randn(batch, 4, height // 8, width // 8, generator=torch.Generator().manual_seed(0))
    context = torch.randn(batch, 77, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return adapter.to(dtype)(x.to(dtype), torch.full((batch,), 500.0), context.to(dtype), pose.to(dtype), masks)


def test_sd15_config_has_the_released_parameter_count():
    with torch.device("meta"):
        model = StablePoseAdapter(AdapterConfig.sd15())
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == 364.9
    assert len(model.input_blocks) == 12


@pytest.mark.parametrize(("height", "width"), [(512, 768), (384, 640), (136, 200), (64, 64)])
def test_residual_shapes_follow_the_unet_at_any_size(adapter, height, width):
    outs = _run(adapter, height, width, batch=3)
    h, w = height // 8, width // 8
    assert len(outs) == 1 + 3 * 2 + 2 + 1  # conv_in, 3 levels × 2 res-blocks, 2 downsamples, middle
    assert outs[0].shape == (3, 32, h, w)
    assert outs[-1].shape[-2:] == (-(-h // 4), -(-w // 4))
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_finite_and_close(adapter, dtype):
    reference = _run(adapter, 128, 192)
    half = _run(adapter, 128, 192, dtype=dtype)
    adapter.float()
    for ref, out in zip(reference, half, strict=True):
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max() + 1e-3


def test_precomputed_pose_features_equal_the_direct_path(adapter):
    pose = sample_pose_image(64, 64)
    x, t, ctx = torch.randn(1, 4, 8, 8), torch.tensor([10.0]), torch.randn(1, 77, 64)
    with torch.no_grad():
        direct = adapter(x, t, ctx, pose_image=pose)
        cached = adapter(x, t, ctx, pose_features=adapter.encode_pose(pose))
    assert all(torch.equal(a, b) for a, b in zip(direct, cached, strict=True))


def test_missing_pose_is_explained(adapter):
    with pytest.raises(ValueError, match="pose image"):
        adapter(torch.randn(1, 4, 8, 8), torch.tensor([1.0]), torch.randn(1, 77, 64))


def test_position_embedding_matches_the_official_formula_and_extends():
    emb = pmsa.posemb_sincos_2d(32, 32, 512)
    y, x = 5, 7
    omega = 1.0 / 10000 ** (torch.arange(128) / 127)
    expected = torch.cat([torch.sin(x * omega), torch.cos(x * omega), torch.sin(y * omega), torch.cos(y * omega)])
    torch.testing.assert_close(emb[y * 32 + x], expected)
    wide = pmsa.posemb_sincos_2d(32, 48, 512)
    torch.testing.assert_close(wide[y * 48 + x], expected)


def test_min_filled_attention_blocks_equal_the_dense_path(monkeypatch):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 50, 8, generator=g) for _ in range(3))
    tokens_in = torch.rand(2, 50, generator=g) > 0.7
    dense = pmsa.min_filled_attention(q, k, v, tokens_in)
    monkeypatch.setattr(pmsa, "_MAX_DENSE_LOGITS", 2 * 3 * 50 * 7)
    blocked = pmsa.min_filled_attention(q, k, v, tokens_in)
    torch.testing.assert_close(blocked, dense)
    logits = q @ k.transpose(-1, -2)
    allowed = tokens_in[:, None, :, None] | tokens_in[:, None, None, :]
    naive = torch.where(allowed, logits, logits.min()).softmax(-1) @ v
    torch.testing.assert_close(dense, naive)


def test_all_in_masks_equal_no_masks():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 20, 8, generator=g) for _ in range(3))
    full = pmsa.min_filled_attention(q, k, v, torch.ones(1, 20, dtype=torch.bool))
    torch.testing.assert_close(full, torch.softmax(q @ k.transpose(-1, -2), -1) @ v)


def test_control_dict_layout():
    residuals = [torch.full((1,), float(i)) for i in range(13)]
    control = control_dict(residuals)
    assert control["middle"][0].item() == 12
    assert [o.item() for o in control["output"]] == list(range(12))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inject_layers": (1, 4), "inject_channels": (192, 256)}, "one inject layer"),
        ({"vit_dim": 500}, "vit_dim"),
        ({"inject_layers": (3,)}, "downsampling"),
    ],
)
def test_invalid_configs_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdapterConfig(**kwargs)


def test_min_filled_attention_backward_treats_the_fill_as_a_constant():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 12, 4, generator=g, requires_grad=True) for _ in range(3))
    tokens_in = torch.arange(12)[None] % 4 == 0
    pmsa.min_filled_attention(q, k, v, tokens_in).square().sum().backward()
    ours = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    logits = q @ k.transpose(-1, -2)
    allowed = tokens_in[:, None, :, None] | tokens_in[:, None, None, :]
    (torch.where(allowed, logits, logits.min().detach()).softmax(-1) @ v).square().sum().backward()
    for mine, reference in zip(ours, (q.grad, k.grad, v.grad), strict=True):
        torch.testing.assert_close(mine, reference)
