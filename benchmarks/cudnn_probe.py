"""Does cuDNN's autotuner (torch.backends.cudnn.benchmark) help or hurt landscape on this GPU?

Runs `landscape bench` in-process for one model three ways: as shipped (autotune on around
landscape's evaluation only), with landscape's autotune switched off, and with autotune on
everywhere (raw forward too). Prints one table per way; no baseline.

    python benchmarks/cudnn_probe.py --model resnet56 --samples 20000 --batch-size 4000
"""

from __future__ import annotations

import argparse
import contextlib

import torch

import landscape.engine as engine
from landscape.bench import format_results, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=4000)
    parser.add_argument("--precisions", default="float32,tf32,bf16")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    shipped = engine._cudnn_autotune
    ways = {
        "as shipped": (shipped, False),
        "landscape autotune off": (lambda device: contextlib.nullcontext(), False),
        "autotune on everywhere": (shipped, True),
    }
    for name, (autotune, everywhere) in ways.items():
        engine._cudnn_autotune = autotune
        torch.backends.cudnn.benchmark = everywhere
        results = run_benchmark(
            models=(args.model,),
            samples=args.samples,
            precisions=tuple(args.precisions.split(",")),
            batch_sizes=(args.batch_size,),
            batch_size=args.batch_size,
            device=args.device,
            baseline=False,
        )
        print(f"--- {name}")
        print(format_results(results).split("\n\n")[0])
    engine._cudnn_autotune = shipped


if __name__ == "__main__":
    main()
