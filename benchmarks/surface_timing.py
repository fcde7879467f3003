"""Time a whole surface run end to end (directions, evaluation, HDF5 file) and project 51x51.

Unlike `landscape bench`, which times the evaluation loop alone, this runs `loss_surface` as a
user would, so every overhead is inside the figure. Random CIFAR-shaped data, random-init model
with BN statistics of the data.

    python benchmarks/surface_timing.py --model resnet56 --samples 50000 --grid 3 --device cuda
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import landscape
from landscape.bench import calibrate_bn, normalized_tensors, projected_minutes, synthetic_images
from landscape.config import EngineConfig
from landscape.models import create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--samples", type=int, default=50000)
    parser.add_argument("--grid", type=int, default=3, help="points per axis")
    parser.add_argument("--precisions", default="float32,bf16")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the device's")
    parser.add_argument("--compile", action="store_true", help="engine.compile: torch.compile")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()

    device = landscape.engine.resolve_device(args.device)
    images, labels = synthetic_images(args.samples, 32)
    x, y = normalized_tensors(images, labels)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10, in_channels=3)
    calibrate_bn(model, x[:5000])
    model = model.to(device).eval()
    x, y = x.to(device), y.to(device)
    points = args.grid * args.grid
    batch = landscape.engine.resolve_batch_size(args.batch_size, device)
    # Warm-up (cuDNN kernel choice) on one point, not timed.
    landscape.loss_surface(model, (x[:2000], y[:2000]), x=(0, 0, 1), y=None, device=device)
    for precision in args.precisions.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            if device.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            surface = landscape.loss_surface(
                model,
                (x, y),
                x=(-1, 1, args.grid),
                y=(-1, 1, args.grid),
                precision=precision,
                batch_size=batch,
                device=device,
                engine=EngineConfig(compile=args.compile),
                path=Path(tmp) / "s.h5",
            )
            seconds = time.perf_counter() - start
        rate = points * args.samples / seconds
        result = {
            "model": args.model,
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "precision": precision,
            "grid": args.grid,
            "batch_size": batch,
            "compile": args.compile,
            "samples": args.samples,
            "seconds": seconds,
            "images_per_s": rate,
            "projected_minutes_51x51_50k": projected_minutes(rate),
            "origin_loss": float(surface.metrics["train_loss"][args.grid // 2, args.grid // 2]),
            "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20
            if device.type == "cuda"
            else None,
        }
        print(
            f"{args.model} {precision}{' compiled' if args.compile else ''}, batch "
            f"{batch}: {points} points x {args.samples} images in "
            f"{seconds:.1f} s = {rate:,.0f} img/s; 51x51 on 50k projected "
            f"{result['projected_minutes_51x51_50k']:.1f} min"
        )
        print(json.dumps(result))
        if args.json_out:
            with open(args.json_out, "a") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
