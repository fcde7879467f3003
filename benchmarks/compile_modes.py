"""Raw forward of a model on a GPU under torch.compile modes: how far compilation can go.

Times the plain model (no landscape engine) in bf16 autocast, channels-last, one batch size:
eager, torch.compile default, and mode='reduce-overhead' (CUDA graphs). An upper bound for
what `engine.compile` could reach; random data, random-init model.

    python benchmarks/compile_modes.py --model resnet56 --batch-size 4000
"""

from __future__ import annotations

import argparse
import time

import torch

from landscape.models import create_model


def rate(fn, x: torch.Tensor, repeats: int) -> float:
    for _ in range(3):  # warm-up: compilation, graph capture, cuDNN kernel choice
        fn(x)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(x)
    torch.cuda.synchronize()
    return repeats * len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet56")
    parser.add_argument("--batch-size", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10, in_channels=3).cuda().eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(args.batch_size, 3, 32, 32, device="cuda").contiguous(
        memory_format=torch.channels_last
    )
    variants = {
        "eager": model,
        "compile": torch.compile(model),
        "compile reduce-overhead": torch.compile(model, mode="reduce-overhead"),
    }
    for name, net in variants.items():

        def fn(b: torch.Tensor, net=net) -> torch.Tensor:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                return net(b)

        t0 = time.perf_counter()
        try:
            r = rate(fn, x, args.repeats)
        except Exception as exc:  # report and go on: this is a measurement, not a product path
            print(f"{name:<26} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        print(f"{name:<26} {r:>10,.0f} img/s  (with warm-up {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
