"""Cost per sampling step in ComfyUI: plain SD1.5, with a stock SD1.5 ControlNet, with Stable-Pose.

    python benchmarks/bench_step.py [--sizes 256x192,512x512,512x768] [--rounds 3] [--steps 2]
                                    [--frames 16] [--frame-size 256x192] [--window 8/2]
                                    [--device cpu|cuda] [--dtype fp32|fp16|bf16] [--profile DIR]

One ComfyUI process (``harness.comfy_host.ComfyHost``) loads the random-weight test models of the true
architectures (``harness.make_test_models``): an SD1.5 checkpoint through ``CheckpointLoaderSimple``, a stock
SD1.5 ControlNet through ``ControlNetLoader`` + ``ControlNetApplyAdvanced`` (ComfyUI's own ControlNet classes)
and the Stable-Pose adapter through ``LoadStablePose`` + ``ApplyStablePose``, all fed the same pose image.
Each case runs CFG sampling (euler, cfg 5, cond and uncond batched as ComfyUI does) of the three variants in
interleaved rounds (their order rotating from round to round), timing each sampling by wall clock and by
process CPU time (less disturbed by other processes on a shared machine); a step is sampling time / steps,
so per-sampling setup (hint resize, pose features) is included as a user pays it. ``--frames`` adds a clip of
that many latents, one pose per frame; ``--window LENGTH/OVERLAP`` adds the same clip sampled through
ComfyUI's ``Context Windows (Manual)`` (every variant under the same windows; ``benchmarks/bench_video.py``
runs that case alone, at clip sizes).
Printed per case: step times (min and median over rounds), each control's overhead over the plain step
(difference of the minima, and the median of the per-round differences), the ratio Stable-Pose / ControlNet of
each, each control network's own forward time per step, and peak memory beside ControlNet's (tensor memory a
sampling allocates beyond what was resident: the profiler's allocator events on CPU, ``max_memory_allocated``
on CUDA) with the networks' resident weights.

``--dtype`` is the dtype the networks compute in. ComfyUI on a CPU never computes in fp16/bf16 (it stores
such weights and casts them to fp32 per layer); with ``--dtype fp16/bf16`` on a CPU this script tells
ComfyUI's precision choice that the CPU runs that dtype, so all three variants really compute in it
(``--weight-dtype`` alone reproduces ComfyUI's own choice: weights stored in it, computed in fp32).
On a GPU: ``python benchmarks/bench_step.py --device cuda --dtype fp16``.

``--profile DIR`` runs one sampling of each variant at the first size under ``torch.profiler`` and prints
the operators whose total time differs most between the variants, side by side (traces saved in DIR).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness.clip_sampling import comfy_windows
from harness.comfy_host import ComfyHost
from harness.make_test_models import ensure_test_models
from harness.reference_weights import sample_pose_image
from stablepose_host import import_comfy

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
WEIGHT_FLAGS = {"fp32": "fp32_unet", "fp16": "fp16_unet", "bf16": "bf16_unet"}  # ComfyUI's --*-unet options
VARIANTS = ("plain", "controlnet", "stable_pose")
CFG, SAMPLER, SCHEDULER, SEED = 5.0, "euler", "normal", 0


@dataclass(frozen=True)
class Case:
    """One benchmarked shape: ``batch`` latents of ``width``×``height`` px, optionally sampled through context
    windows of ``window`` = (length, overlap) frames."""

    width: int
    height: int
    batch: int = 1
    window: tuple[int, int] | None = None

    @classmethod
    def parse(cls, text: str, batch: int = 1, window: str | None = None) -> Case:
        width, _, height = text.lower().partition("x")
        length, _, overlap = window.partition("/") if window else (None, None, None)
        return cls(int(width), int(height), batch, None if length is None else (int(length), int(overlap or 0)))

    def __str__(self) -> str:
        frames = f" x{self.batch} frames" if self.batch > 1 else ""
        return f"{self.width}x{self.height}{frames}" + (
            f", windows {self.window[0]}/{self.window[1]}" if self.window else ""
        )


@dataclass
class Variant:
    """What KSampler receives for one variant, and the control network it adds (None for plain)."""

    model: object
    positive: list
    negative: list
    network: torch.nn.Module | None = None


@dataclass
class Models:
    """The models, loaded once through ComfyUI's and the pack's loader nodes."""

    host: ComfyHost
    model: object
    positive: list
    negative: list
    controlnet: object
    adapter: object
    forward: dict[int, list[Timing]] = field(default_factory=dict)  # id(network) -> its forward calls

    @classmethod
    def load(cls, host: ComfyHost) -> Models:
        nodes = host.nodes
        files = ensure_test_models()
        model, clip, _ = nodes.CheckpointLoaderSimple().load_checkpoint(files.checkpoint.name)
        encode = nodes.CLIPTextEncode()
        positive, negative = encode.encode(clip, "a person dancing")[0], encode.encode(clip, "blurry")[0]
        controlnet = nodes.ControlNetLoader().load_controlnet(files.controlnet.name)[0]
        adapter = host.node_class("LoadStablePose")().load(files.adapter.name)[0]
        models = cls(host, model, positive, negative, controlnet, adapter)
        for network in (controlnet.control_model, adapter.model):
            models._time_forward(network)
        return models

    def variants(self, case: Case) -> dict[str, Variant]:
        """The three variants for ``case``'s pose image (Apply ControlNet / Apply Adapter (Stable-Pose) nodes)."""
        pose = pose_image(case)
        cn_pos, cn_neg = self.host.nodes.ControlNetApplyAdvanced().apply_controlnet(
            self.positive, self.negative, self.controlnet, pose, 1.0, 0.0, 1.0
        )
        patched = self.host.node_class("ApplyStablePose")().apply(self.model, self.adapter, pose, 1.0, 0.0, 1.0)[0]
        plain = self.windowed(self.model, case)
        return {
            "plain": Variant(plain, self.positive, self.negative),
            "controlnet": Variant(plain, cn_pos, cn_neg, self.controlnet.control_model),
            "stable_pose": Variant(self.windowed(patched, case), self.positive, self.negative, self.adapter.model),
        }

    def windowed(self, model: object, case: Case) -> object:
        """``model`` under ComfyUI's ``Context Windows (Manual)`` (static schedule, pyramid fuse) if windowed."""
        if case.window is None:
            return model
        use_context_step_fix()
        return comfy_windows(self.host, model, *case.window, "standard_static")

    def _time_forward(self, network: torch.nn.Module) -> None:
        """Record the network's own forward calls (synchronised on CUDA) into ``forward``."""
        timings = self.forward.setdefault(id(network), [])
        starts: list[Timing] = []
        network.register_forward_pre_hook(lambda module, args: starts.append(Timing.now()))
        network.register_forward_hook(lambda module, args, output: timings.append(Timing.now().since(starts.pop())))


def set_precision(device: str, dtype: str, weight_dtype: str) -> None:
    """Make ComfyUI store every UNet-like model (UNet, ControlNet, adapter) in ``weight_dtype`` and compute
    in ``dtype``; called after ComfyUI is imported, before any model is loaded."""
    import comfy.model_management as mm
    from comfy.cli_args import args

    setattr(args, WEIGHT_FLAGS[weight_dtype], True)
    compute = DTYPES[dtype]
    mm.unet_manual_cast = lambda weight, *_, **__: None if weight == compute else compute


def boot(device: str, attention: str, workdir: Path) -> ComfyHost:
    """ComfyUI with the test models; ``attention``: ComfyUI's own choice, or ``pytorch`` as
    ``--use-pytorch-cross-attention`` (set before ComfyUI picks its attention function at import)."""
    files = ensure_test_models()
    models = workdir / "models"
    for folder, path in files.by_folder().items():
        (models / folder).mkdir(parents=True)
        (models / folder / path.name).symlink_to(path)
    args = import_comfy("comfy.cli_args", cpu=device == "cpu").args

    args.use_pytorch_cross_attention = attention == "pytorch"
    return ComfyHost.boot(workdir, models_dir=models, cpu=device == "cpu")


def use_context_step_fix() -> None:
    """ComfyUI 0.3.75's context windows compare the schedule with every frame's timestep (a clip of N frames only
    samples at N - 1 steps); compare with the first frame's, as ComfyUI 0.8.x does. No-op on 0.8.x."""
    import comfy.context_windows

    handler = comfy.context_windows.IndexListContextHandler
    if "timestep[0]" in inspect.getsource(handler.set_step):
        return

    def set_step(self, timestep: torch.Tensor, model_options: dict) -> None:
        sigmas = model_options["transformer_options"]["sample_sigmas"]
        self._step = int(torch.nonzero(torch.isclose(sigmas, timestep[0], rtol=0.0001))[0].item())

    handler.set_step = set_step


def pose_image(case: Case) -> torch.Tensor:
    """A drawn skeleton as a ComfyUI IMAGE (N, H, W, 3) in [0, 1]: one image, or for a clip one per frame
    (the skeleton moving right by 1/32 of the width per frame)."""
    pose = (sample_pose_image(case.height, case.width).movedim(1, -1) + 1) / 2
    if case.batch == 1:
        return pose
    return torch.cat([pose.roll(case.width // 32 * i, dims=2) for i in range(case.batch)])


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@dataclass(frozen=True)
class Timing:
    """Seconds by wall clock and by process CPU time (all threads)."""

    wall: float
    cpu: float

    @classmethod
    def now(cls) -> Timing:
        _sync()
        return cls(time.perf_counter(), time.process_time())

    def since(self, start: Timing, per: int = 1) -> Timing:
        return Timing((self.wall - start.wall) / per, (self.cpu - start.cpu) / per)


@dataclass(frozen=True)
class Sampling:
    """One timed sampling: ``step``, a steady step (first step's end to the last's, per step: the model calls
    and sampler update only), and ``with_setup``, the whole call per step (model loading/switching, hint
    resize, pose features included)."""

    step: Timing
    with_setup: Timing


def sample(variant: Variant, case: Case, steps: int) -> Sampling:
    """One CFG sampling of ``case`` with ``steps`` steps (at least 2 for a steady step)."""
    import comfy.sample

    latent = torch.zeros(case.batch, 4, case.height // 8, case.width // 8)
    noise = comfy.sample.prepare_noise(latent, SEED)
    step_ends: list[Timing] = []
    start = Timing.now()
    with torch.inference_mode():
        comfy.sample.sample(
            variant.model, noise, steps, CFG, SAMPLER, SCHEDULER, variant.positive, variant.negative, latent,
            callback=lambda *_: step_ends.append(Timing.now()), disable_pbar=True, seed=SEED,
        )  # fmt: skip
    end = Timing.now()
    steady = step_ends[-1].since(step_ends[0], steps - 1) if steps > 1 else end.since(start)
    return Sampling(steady, end.since(start, steps))


def peak_memory(run: Callable[[], object], device: str) -> int:
    """Bytes of tensor memory ``run`` allocates at its peak beyond what was allocated before."""
    if device == "cuda":
        _sync()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        run()
        _sync()
        return torch.cuda.max_memory_allocated() - base
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    with tempfile.NamedTemporaryFile(suffix=".json") as trace:
        prof.export_chrome_trace(trace.name)
        events = json.loads(Path(trace.name).read_text())["traceEvents"]
    totals = [e["args"]["Total Allocated"] for e in events if e.get("name") == "[memory]"]
    return max(totals, default=0)


def resident_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


@dataclass
class Result:
    """One variant at one case: its timed samplings (one per round), network forward calls, memory."""

    samplings: list[Sampling] = field(default_factory=list)
    forward: list[Timing] = field(default_factory=list)
    peak: int = 0
    resident: int = 0

    def values(self, kind: str = "step", clock: str = "wall") -> list[float]:
        return [getattr(getattr(s, kind), clock) for s in self.samplings]

    def overhead(self, plain: Result, kind: str = "step", clock: str = "wall", paired: bool = False) -> float:
        """Seconds per step over ``plain``: difference of the minima, or median of the per-round differences."""
        mine, theirs = self.values(kind, clock), plain.values(kind, clock)
        if paired:
            return statistics.median(a - b for a, b in zip(mine, theirs, strict=True))
        return min(mine) - min(theirs)

    def forward_median(self, clock: str = "wall") -> float:
        return statistics.median(getattr(t, clock) for t in self.forward) if self.forward else 0.0


def rotated(names: list[str], round_: int) -> list[str]:
    """The variants' order in one round, rotated each round: none always runs right after the same other."""
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def run_case(models: Models, case: Case, args: argparse.Namespace) -> dict[str, Result]:
    """Interleaved rounds of the three variants at one case, then one more sampling each for peak memory."""
    variants = models.variants(case)
    for variant in variants.values():  # warm-up: first-call allocations, hint resize, pose features
        sample(variant, case, 1)
    for timings in models.forward.values():
        timings.clear()
    results = {name: Result() for name in variants}
    for round_ in range(args.rounds):
        for name in rotated(list(variants), round_):
            results[name].samplings.append(sample(variants[name], case, args.steps))
    for name, variant in variants.items():
        if variant.network is not None:
            results[name].forward = list(models.forward[id(variant.network)])
            results[name].resident = resident_bytes(variant.network)
        if args.memory:
            results[name].peak = peak_memory(lambda v=variant: sample(v, case, 1), args.device)
    return results


MEASURES = {  # name: (kind, clock, paired)
    "step, min": ("step", "wall", False),
    "step, median of rounds": ("step", "wall", True),
    "step, CPU time": ("step", "cpu", False),
    "with setup, min": ("with_setup", "wall", False),
}


def report(case: Case, results: dict[str, Result]) -> dict[str, float]:
    """Print one case; returns the ratios Stable-Pose / ControlNet by measure."""
    plain, cn, sp = (results[name] for name in VARIANTS)
    print(
        f"\n{case}: seconds per steady step, wall clock min / median of rounds [CPU time min] "
        "(whole sampling per step, min)"
    )
    for name in VARIANTS:
        r = results[name]
        wall = r.values()
        line = (
            f"  {name:<12} {min(wall):7.3f} / {statistics.median(wall):7.3f} [{min(r.values(clock='cpu')):7.3f}]"
            f" ({min(r.values('with_setup')):7.3f})"
        )
        if r is not plain:
            overheads = [r.overhead(plain, *measure) for measure in MEASURES.values()]
            line += (
                f"  overhead {overheads[0]:6.3f} / {overheads[1]:6.3f} [{overheads[2]:6.3f}] ({overheads[3]:6.3f})"
                f"  network forward {r.forward_median():6.3f} [{r.forward_median('cpu'):6.3f}]"
                f"  weights {r.resident / 2**20:5.0f} MiB"
            )
        if r.peak:
            line += f"  peak {r.peak / 2**20:6.0f} MiB"
        print(line)
    ratios = {name: sp.overhead(plain, *m) / cn.overhead(plain, *m) for name, m in MEASURES.items()}
    ratios["network forward"] = sp.forward_median() / cn.forward_median()
    if cn.peak:
        ratios["peak memory"] = sp.peak / cn.peak
    print("  ratio Stable-Pose / ControlNet: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    return ratios


@contextlib.contextmanager
def _profiled(path: Path) -> Iterator[torch.profiler.profile]:
    activities = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
        yield prof
    prof.export_chrome_trace(str(path))


def profile(models: Models, case: Case, args: argparse.Namespace, top: int = 30) -> None:
    """Interleaved rounds of one sampling per variant under the profiler; per operator (and input shapes) its
    smallest self time over the rounds, side by side, the operators that differ most between variants first."""
    args.profile.mkdir(parents=True, exist_ok=True)
    variants = models.variants(case)
    tables: dict[str, dict[tuple[str, str], tuple[float, int]]] = {name: {} for name in variants}
    for variant in variants.values():
        sample(variant, case, 1)
    for _ in range(args.rounds):
        for name, variant in variants.items():
            with _profiled(args.profile / f"{name}_{case.width}x{case.height}.json") as prof:
                sample(variant, case, args.steps)
            for e in prof.key_averages(group_by_input_shape=True):
                key = (e.key, str(e.input_shapes))
                self_us = e.self_device_time_total if args.device == "cuda" else e.self_cpu_time_total
                known = tables[name].get(key, (float("inf"), 0))[0]
                tables[name][key] = (min(known, self_us / args.steps), e.count // args.steps)
    _print_profile(case, tables, top)
    print(f"  traces of the last round in {args.profile}")


def _print_profile(case: Case, tables: dict[str, dict[tuple[str, str], tuple[float, int]]], top: int) -> None:
    def ms(name: str, key: tuple[str, str]) -> float:
        return tables[name].get(key, (0.0, 0))[0] / 1e3

    def difference(key: tuple[str, str]) -> float:
        return abs(ms("stable_pose", key) - ms("controlnet", key))

    print(f"\nprofile {case}: self time per step (ms), min over rounds; calls per step; largest |SP - CN| first")
    print(
        f"  {'operator [input shapes]':<78}{'plain':>9}{'controlnet':>11}{'stable_pose':>12}{'SP - CN':>9}{'calls':>10}"
    )
    for key in sorted(set().union(*tables.values()), key=difference, reverse=True)[:top]:
        calls = "/".join(str(tables[n].get(key, (0, 0))[1]) for n in ("controlnet", "stable_pose"))
        label = f"{key[0]} {key[1]}"[:77]
        sp, cn = ms("stable_pose", key), ms("controlnet", key)
        print(f"  {label:<78}{ms('plain', key):9.1f}{cn:11.1f}{sp:12.1f}{sp - cn:9.1f}{calls:>10}")
    totals = {n: sum(v[0] for v in table.values()) / 1e3 for n, table in tables.items()}
    print(
        f"  {'total':<78}{totals['plain']:9.1f}{totals['controlnet']:11.1f}{totals['stable_pose']:12.1f}"
        f"{totals['stable_pose'] - totals['controlnet']:9.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256x192,512x512,512x768", help="comma-separated WxH in px")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per size (min and median)")
    parser.add_argument("--steps", type=int, default=3, help="sampling steps per timed sampling (at least 2)")
    parser.add_argument("--frames", type=int, default=0, help="also a batch of this many latents (video frames)")
    parser.add_argument("--frame-size", default="256x192", help="WxH of the frames batch")
    parser.add_argument("--window", help="also the frames batch under context windows of LENGTH/OVERLAP frames")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--attention",
        choices=("comfy", "pytorch"),
        default="comfy",
        help="ComfyUI's attention function: its default for the device, or pytorch (--use-pytorch-cross-attention)",
    )
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="fp32", help="compute dtype of the networks")
    parser.add_argument("--weight-dtype", choices=tuple(DTYPES), help="stored weight dtype (default: --dtype)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak memory pass")
    parser.add_argument("--profile", type=Path, help="profile the first size instead, traces into this folder")
    args = parser.parse_args()
    torch.manual_seed(SEED)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_step_") as workdir:
        host = boot(args.device, args.attention, Path(workdir))
        set_precision(args.device, args.dtype, args.weight_dtype or args.dtype)
        models = Models.load(host)
        cases = [Case.parse(size) for size in args.sizes.split(",")]
        if args.frames:
            cases.append(Case.parse(args.frame_size, args.frames))
            if args.window:
                cases.append(Case.parse(args.frame_size, args.frames, args.window))
        import comfy.ldm.modules.attention as comfy_attention

        print(
            f"device {args.device}, compute {args.dtype}, weights {args.weight_dtype or args.dtype}, "
            f"{torch.get_num_threads()} threads, {args.steps} steps x {args.rounds} rounds, torch {torch.__version__}, "
            f"ComfyUI attention {comfy_attention.optimized_attention.__name__}"
        )
        if args.profile:
            profile(models, cases[0], args)
            return
        ratios = {str(case): report(case, run_case(models, case, args)) for case in cases}
        print("\nratio Stable-Pose / ControlNet overhead per steady step, min / median of rounds [CPU time]:")
        for case, r in ratios.items():
            print(f"  {case:<24} {r['step, min']:.3f} / {r['step, median of rounds']:.3f} [{r['step, CPU time']:.3f}]")


if __name__ == "__main__":
    main()
