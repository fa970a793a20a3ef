"""The adapter at any size, batch and precision; PMSA attention details."""

import pytest
import torch

from harness.reference_weights import sample_pose_image, seeded_state_dict
from stablepose_core.model import pmsa
from stablepose_core.model.adapter import AdapterConfig, StablePoseAdapter, control_dict
from stablepose_core.model.masks import MaskSettings, pmsa_masks
from stablepose_core.model.row_groups import RowGroups

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


@pytest.mark.parametrize(
    ("height", "width"),
    [*(pytest.param(*size, marks=pytest.mark.slow) for size in ((512, 768), (384, 640))), (136, 200), (64, 64)],
)
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


def test_precomputed_pose_terms_equal_the_direct_path(adapter):
    pose = sample_pose_image(64, 64)
    x, t, ctx = torch.randn(1, 4, 8, 8), torch.tensor([10.0]), torch.randn(1, 77, 64)
    with torch.no_grad():
        direct = adapter(x, t, ctx, pose_image=pose)
        cached = adapter(x, t, ctx, pose_terms=adapter.encode_pose(pose))
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


def naive_min_filled_attention(q, k, v, token_mask):
    """The released definition, written densely: disallowed logits replaced by the minimum of all logits."""
    logits = q @ k.transpose(-1, -2)
    allowed = token_mask[:, None, :, None] | token_mask[:, None, None, :]
    return torch.where(allowed, logits, logits.min().detach()).softmax(-1) @ v


@pytest.mark.parametrize("min_search_block", [None, 2 * 3 * 50 * 7])
def test_min_filled_attention_equals_the_dense_definition(monkeypatch, min_search_block):
    g = torch.Generator().manual_seed(0)
    q, k, v = (2 * torch.randn(5, 3, 50, 8, generator=g, dtype=torch.float64) for _ in range(3))
    token_mask = torch.rand(5, 50, generator=g) > torch.tensor([[0.9], [0.7], [0.2], [0.0], [1.0]])
    assert token_mask[3].all() and not token_mask[4].any()  # a full row and an empty one among partial rows
    if min_search_block:  # several query blocks and a remainder in the search for the minimum
        monkeypatch.setattr(pmsa, "_min_search_block", lambda device: min_search_block)
    expected = naive_min_filled_attention(q, k, v, token_mask)
    torch.testing.assert_close(pmsa.min_filled_attention(q, k, v, token_mask), expected, rtol=0, atol=1e-12)
    for rows in ([0, 1, 2], [4]):  # only masked rows, only an empty row: the minimum is taken over the call
        subset = naive_min_filled_attention(q[rows], k[rows], v[rows], token_mask[rows])
        torch.testing.assert_close(
            pmsa.min_filled_attention(q[rows], k[rows], v[rows], token_mask[rows]), subset, rtol=0, atol=1e-12
        )


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
    q, k, v = (torch.randn(2, 2, 12, 4, generator=g, requires_grad=True) for _ in range(3))
    token_mask = torch.stack([torch.arange(12) % 4 == 0, torch.ones(12, dtype=torch.bool)])
    pmsa.min_filled_attention(q, k, v, token_mask).square().sum().backward()
    ours = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    naive_min_filled_attention(q, k, v, token_mask).square().sum().backward()
    for mine, reference in zip(ours, (q.grad, k.grad, v.grad), strict=True):
        torch.testing.assert_close(mine, reference)


def test_row_groups_merge_only_equal_rows():
    a, b = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    groups = RowGroups.of(torch.stack([a, b, a, b, a]))
    assert groups.first.tolist() == [0, 1] or groups.first.tolist() == [1, 0]
    assert groups.index[[0, 2, 4]].unique().numel() == 1 and groups.index[1] == groups.index[3] != groups.index[0]
    assert RowGroups.of(torch.stack([a, b])) is None and RowGroups.of(a[None]) is None
    swapped = torch.tensor([[1.0, 2.0], [2.0, 1.0]])  # equal sums, different rows: never merged
    assert RowGroups.of(swapped) is None
    assert RowGroups.of(torch.stack([a, a]), torch.tensor([0.0, 1.0])) is None  # unequal in the second tensor


@pytest.mark.parametrize("schedule", ["evaluation", "unmasked"])
def test_equal_cfg_rows_are_computed_once_with_the_same_result(adapter, monkeypatch, schedule):
    """[uncond; cond] rows of one latent share the inject block's conv and ViT work until their masks differ."""
    block = adapter.input_blocks[SMALL.inject_layers[0]][0]
    pose = sample_pose_image(64, 96).repeat(4, 1, 1, 1)
    masks = pmsa_masks(pose, torch.tensor([True, True, False, False]), MaskSettings(schedule=schedule))
    tokens = None if masks is None else pmsa.to_token_masks(masks, SMALL.vit_patch)
    g = torch.Generator().manual_seed(0)
    x, emb = torch.randn(2, 32, 8, 12, generator=g).repeat(2, 1, 1, 1), torch.randn(2, 128, generator=g).repeat(2, 1)
    pose_term = block.pose_term(torch.randn(2, 32, 8, 12, generator=g).repeat(2, 1, 1, 1))
    seen = {"conv": [], "last mlp": []}
    hooks = [
        block.in_layers[2].register_forward_pre_hook(lambda m, args: seen["conv"].append(len(args[0]))),
        block.attn_layer.transformer.layers[-1][1].register_forward_pre_hook(
            lambda m, args: seen["last mlp"].append(len(args[0]))
        ),
    ]
    with torch.no_grad():
        grouped = block(x, emb, pose_term, tokens)
        monkeypatch.setattr(RowGroups, "of", classmethod(lambda cls, *tensors: None))
        row_by_row = block(x, emb, pose_term, tokens)
    for hook in hooks:
        hook.remove()
    torch.testing.assert_close(grouped, row_by_row, rtol=1e-5, atol=1e-6)
    assert seen["conv"] == [2, 4]
    assert seen["last mlp"] == ([4, 4] if schedule == "evaluation" else [2, 4])  # masks differ from layer 0 on


def test_fill_per_latent_equals_the_dense_definition_per_latent():
    """With ``row_latents`` each latent's rows get the release's result for a call holding only them."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (0.5 * torch.randn(6, 2, 30, 8, generator=g, dtype=torch.float64) for _ in range(3))
    tokens_in = torch.rand(6, 30, generator=g) > torch.tensor([[0.3], [1.0], [0.6], [0.0], [0.5], [0.8]])
    latents = torch.tensor([0, 1, 2, 0, 1, 2])
    ours = pmsa.min_filled_attention(q, k, v, tokens_in, row_latents=latents)
    for latent in range(3):
        rows = latents == latent
        expected = naive_min_filled_attention(q[rows], k[rows], v[rows], tokens_in[rows])
        torch.testing.assert_close(ours[rows], expected, rtol=1e-6, atol=1e-8)  # the fill bias is float32
    call = pmsa.min_filled_attention(q, k, v, tokens_in)
    assert (ours - call).abs().max() > 1e-3, "the call's minimum gives other results"
