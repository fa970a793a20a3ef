"""Convert an official Stable-Pose checkpoint (``.pth``/``.ckpt``) to an adapter-only ``.safetensors``.

    python -m stablepose_core.convert final.pth stable_pose_humanart.safetensors [--dtype fp16|fp32]

Keys are the official adapter keys without ``stable_pose_adapter.``; the metadata records the inferred config
and the source file's SHA-256. With ``--dtype fp32`` an fp32 source is copied bit for bit. The adapter is built
from the converted tensors before anything is written (a file the loader would refuse is never written), the
output may not be the input (also through links), and an interrupted run leaves no temporary file behind
(``checkpoints.partial_folder``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from .checkpoints import (
    CheckpointError,
    adapter_state_dict,
    build_adapter,
    file_sha256,
    infer_config,
    read_checkpoint,
    save_adapter,
)

DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}


def convert(source: Path, target: Path, dtype: str = "fp16") -> int:
    """Write the adapter of ``source`` to ``target``; returns the number of tensors written."""
    if source.exists() and target.exists() and os.path.samefile(source, target):
        raise CheckpointError(f"{target}: the output is the input file itself; choose another output name")
    tensors, metadata = read_checkpoint(source)
    try:
        state_dict = adapter_state_dict(tensors)
        config = infer_config(state_dict, metadata)
        cast = {k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in state_dict.items()}
        build_adapter(cast, config)  # what the loader will do: refuse here rather than write an unusable file
    except CheckpointError as error:
        raise CheckpointError(f"{source}: {error}") from None
    provenance = {"source_file": source.name, "source_sha256": file_sha256(source), "dtype": dtype}
    save_adapter(target, cast, metadata=provenance, config=config)
    return len(cast)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stablepose_core.convert", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="official checkpoint (.pth/.ckpt) or any adapter file")
    parser.add_argument("target", type=Path, help="output .safetensors")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp16", help="tensor dtype (default fp16)")
    args = parser.parse_args(argv)
    if args.target.suffix != ".safetensors":
        parser.error("the output file must end in .safetensors")
    try:
        count = convert(args.source, args.target, args.dtype)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {count} tensors to {args.target}")
    return 0
