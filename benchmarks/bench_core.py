"""Mask building and the PMSA block, ours vs a straightforward re-implementation of the released algorithm.

    python benchmarks/bench_core.py [--size 512] [--batch 2] [--repeat 5]

The baseline follows the official code path (written here from its description, not copied): torchvision
``GaussianBlur`` per kernel, per-sample Python loops that scatter thresholded pixels into a 64×64 grid, a dense
(N, tokens, tokens) boolean mask built per sample per ViT layer at every forward, repeated over heads, and
explicit matmul attention with the min-fill. Both run the same weights (SD1.5 inject block) on the same
inputs in the released [uncond; cond] layout; the script checks the outputs agree and prints the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from einops import rearrange
from torchvision.transforms import GaussianBlur

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.reference_weights import sample_pose_image, seeded_inputs, seeded_state_dict
from stablepose_core.model.adapter import AdapterConfig, AttnResBlock, PoseFeatureExtractor
from stablepose_core.model.masks import MaskSettings, assemble_masks
from stablepose_core.model.pmsa import posemb_sincos_2d, to_token_masks


def naive_latent_masks(pose: torch.Tensor, batch: int) -> torch.Tensor:
    """[ones, k23, ones, k13] latent masks, per-sample loops as the released evaluation builds them."""
    h, w = pose.shape[2] // 8, pose.shape[3] // 8
    out = []
    for kernel in (23, 13):
        masks = torch.zeros(batch, h, w)
        blurred = GaussianBlur(kernel, sigma=3)(pose)
        for i, image in enumerate(blurred):
            _, ys, xs = torch.where(image > -0.99)
            masks[i][ys // 8, xs // 8] = 1
        out.append(torch.cat([torch.ones_like(masks), masks]))
    return torch.cat(out)


def naive_dense_mask(latent: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
    """(N, tokens, tokens) bool: per-sample scatter to the patch grid, then rows and columns set per sample."""
    n, h, w = latent.shape
    grid = torch.zeros(n, gh, gw)
    for i, m in enumerate(latent):
        ys, xs = torch.where(m == 1)
        grid[i][ys // (h // gh), xs // (w // gw)] = 1
    grid = grid.view(n, -1)
    dense = torch.zeros(n, gh * gw, gh * gw)
    for i in range(n):
        idx = torch.where(grid[i] == 1)[0]
        dense[i, idx, :] = 1
        dense[i, :, idx] = 1
    return dense == 1


def naive_transformer(vit, y: torch.Tensor, latent_masks: torch.Tensor, batch: int, gh: int, gw: int) -> torch.Tensor:
    """The ViT layers with dense per-call masks, heads-repeated boolean fill and explicit matmul attention."""
    for (attn, ff), chunk in zip(vit.transformer.layers, torch.split(latent_masks, batch), strict=True):
        dense = naive_dense_mask(chunk, gh, gw)
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=attn.heads) for t in attn.to_qkv(attn.norm(y)).chunk(3, -1))
        dots = torch.matmul(q, k.transpose(-1, -2)) * attn.scale
        dots.masked_fill_(~dense.unsqueeze(1).repeat(1, attn.heads, 1, 1), dots.min().detach())
        y = attn.to_out(rearrange(torch.matmul(dots.softmax(-1), v), "b h n d -> b n (h d)")) + y
        y = ff(y) + y
    return y


def naive_vit(vit, h: torch.Tensor, latent_masks: torch.Tensor, batch: int) -> torch.Tensor:
    y = vit.to_patch_embedding[0](h)
    gh, gw = y.shape[2] // 2, y.shape[3] // 2
    y = rearrange(y, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=2, p2=2)
    y = vit.to_patch_embedding[4](vit.to_patch_embedding[3](vit.to_patch_embedding[2](y)))
    y = naive_transformer(vit, y + posemb_sincos_2d(gh, gw, vit.dim), latent_masks, batch, gh, gw)
    y = rearrange(y, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=gh, p1=2, p2=2)
    return vit.to_out[1](y)


def naive_block(block: AttnResBlock, x, emb, features, latent_masks) -> torch.Tensor:
    """The official block: every step recomputes ``cond_conv(features)``."""
    h = block.in_layers(x) + block.emb_layers(emb)[..., None, None]
    h = block.norm(naive_vit(block.attn_layer, h, latent_masks, x.shape[0])) + block.cond_conv(features)
    return block.skip_connection(x) + block.out_layers(h)


def calls_per_sample(fn, min_sample_s: float = 0.05) -> int:
    start = time.perf_counter()
    fn()
    return max(1, int(min_sample_s / max(time.perf_counter() - start, 1e-7)))


def best_of_interleaved(fns: tuple, repeat: int) -> list[float]:
    """Seconds per call of each function: the best of ``repeat`` samples, each averaging enough calls to last
    50 ms; the functions' samples alternate, so a burst of machine noise hits both sides alike."""
    calls = [calls_per_sample(fn) for fn in fns]
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(calls[i]):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / calls[i])
    return best


def report(name: str, ours: float, baseline: float, note: str = "") -> None:
    print(
        f"{name:<28} ours {ours * 1e3:9.2f} ms  baseline {baseline * 1e3:9.2f} ms  "
        f"speed-up {baseline / ours:7.1f}x  {note}"
    )


def block_inputs(batch: int, lat: int, cfg_rows: bool) -> dict[str, torch.Tensor]:
    """Inject-block inputs. ``cfg_rows``: the [uncond; cond] rows of each latent are equal, as in sampling (the
    block precedes any text conditioning: same latent, same timestep, same pose); else every row differs."""
    rows = batch // 2 if cfg_rows else batch
    shapes = {"h": (rows, 320, lat, lat), "emb": (rows, 1280), "f": (rows, 192, lat, lat)}
    inputs = seeded_inputs(shapes)
    return {k: v.repeat(2, *[1] * (v.dim() - 1)) for k, v in inputs.items()} if cfg_rows else inputs


def seeded_models() -> tuple[AttnResBlock, PoseFeatureExtractor]:
    """The SD1.5 inject block and the pose feature extractor, with seeded weights."""
    block = AttnResBlock(320, 320, AdapterConfig.sd15(), 192).eval()
    block.load_state_dict(seeded_state_dict(block))
    extractor = PoseFeatureExtractor(3, 192).eval()
    extractor.load_state_dict(seeded_state_dict(extractor))
    return block, extractor


def same_masks(pose: torch.Tensor, is_uncond: torch.Tensor, settings: MaskSettings) -> tuple[torch.Tensor, ...]:
    """Our pose masks (per kernel) and token masks, and the baseline's latent masks; checks both give the same
    token masks for the [uncond; cond] rows ``is_uncond`` of ``pose``."""
    batch, grid = len(is_uncond), pose.shape[-1] // 16
    by_kernel = settings.pose_masks(pose)
    latent = naive_latent_masks(pose, batch // 2)
    ours_tokens = to_token_masks(assemble_masks(by_kernel.repeat(1, 2, 1, 1), is_uncond, settings), 2)
    naive_tokens = torch.stack([naive_dense_mask(c, grid, grid).all(-1) for c in torch.split(latent, batch)])
    assert torch.equal(ours_tokens, naive_tokens), "masks differ"
    return by_kernel, latent, ours_tokens


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2, help="rows per call, half uncond half cond")
    parser.add_argument("--repeat", type=int, default=5)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    half, lat = args.batch // 2, args.size // 8
    pose = sample_pose_image(args.size, args.size).repeat(half, 1, 1, 1)
    is_uncond = torch.arange(args.batch) < half
    block, extractor = seeded_models()
    vit = block.attn_layer
    pose_rows = pose.repeat(2, 1, 1, 1)  # the hint of every [uncond; cond] row
    cfg, distinct = block_inputs(args.batch, lat, True), block_inputs(args.batch, lat, False)
    tokens = seeded_inputs({"y": (args.batch, (lat // 2) ** 2, 512)})["y"]
    settings = MaskSettings()

    with torch.inference_mode():
        by_kernel, latent, ours_tokens = same_masks(pose, is_uncond, settings)
        pose_terms = {id(x): block.pose_term(x["f"]) for x in (cfg, distinct)}  # once per sampling (encode_pose)

        def ours(x: dict) -> torch.Tensor:
            return block(x["h"], x["emb"], pose_terms[id(x)], ours_tokens)

        def baseline(x: dict) -> torch.Tensor:
            return naive_block(block, x["h"], x["emb"], x["f"], latent)

        def baseline_with_pose_input(x: dict) -> torch.Tensor:
            """The official step: pose features and cond_conv recomputed, then the block."""
            return naive_block(block, x["h"], x["emb"], extractor(pose_rows)[0], latent)

        with_pose = cfg | {"f": extractor(pose_rows)[0]}
        pose_terms[id(with_pose)] = block.pose_term(with_pose["f"])
        start = time.perf_counter()
        block.pose_term(extractor(pose_rows)[0])
        pose_input_once = time.perf_counter() - start
        max_diff = max((ours(x) - baseline(x)).abs().max().item() for x in (cfg, distinct, with_pose))
        assert max_diff < 1e-3, f"outputs differ by {max_diff}"
        timings = {
            "pose masks (once/sampling)": (
                lambda: settings.pose_masks(pose),
                lambda: naive_latent_masks(pose, half),
            ),
            "masks per step": (
                lambda: to_token_masks(assemble_masks(by_kernel.repeat(1, 2, 1, 1), is_uncond, settings), 2),
                lambda: [naive_dense_mask(c, lat // 2, lat // 2) for c in torch.split(latent, args.batch)],
            ),
            "masked attention layers": (
                lambda: vit.transformer(tokens, ours_tokens),
                lambda: naive_transformer(vit, tokens, latent, args.batch, lat // 2, lat // 2),
            ),
            "PMSA ViT": (
                lambda: vit(distinct["h"], ours_tokens),
                lambda: naive_vit(vit, distinct["h"], latent, args.batch),
            ),
            "inject block, CFG rows": (lambda: ours(cfg), lambda: baseline(cfg)),
            "inject block, distinct rows": (lambda: ours(distinct), lambda: baseline(distinct)),
            "inject layer + pose input": (lambda: ours(with_pose), lambda: baseline_with_pose_input(with_pose)),
        }
        print(f"size {args.size}² batch {args.batch}, torch {torch.__version__}, threads {torch.get_num_threads()}")
        print(f"same masks; block outputs agree: max |ours - baseline| = {max_diff:.2e}")
        for name, fns in timings.items():
            report(name, *best_of_interleaved(fns, args.repeat))
        print(
            "per step, ours reuses what is computed once per sampling (pose masks, pose features + cond_conv: "
            f"{pose_input_once * 1e3:.0f} ms once); the baseline recomputes the pose input at every step"
        )


if __name__ == "__main__":
    main()
