#!/usr/bin/env bash
# The checks a lent GPU machine runs, in one call (see README, Speed). Writes logs under $OUT.
# Uses the machine's own python3 and packages; the project is put on PYTHONPATH, not installed.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
step() { echo "=== $1 ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"
nproc

step "GPU tests"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_bench.py 2>&1 | tee "$OUT/tests.log" | tail -25

step "bench: resnet20 and resnet56, every precision, vmap"
timeout 180 python3 -m landscape bench --device cuda --models resnet20,resnet56 --samples 10000 \
    --precisions float32,tf32,bf16,fp16 --points-per-call 1,4 --json-out "$OUT/bench.jsonl" \
    2>&1 | grep -v '^{' | tee "$OUT/bench.log"

step "end to end: resnet56, 3x3 grid on 50,000 images"
timeout 100 python3 benchmarks/surface_timing.py --model resnet56 --samples 50000 --grid 3 \
    --precisions float32,bf16,tf32 --device cuda --json-out "$OUT/surface.jsonl" 2>&1 \
    | grep -v '^{' | tee "$OUT/surface.log"

step "bench: torch.compile, resnet56"
timeout 120 python3 -m landscape bench --device cuda --models resnet56 --samples 10000 \
    --precisions float32,bf16 --compile --no-baseline --json-out "$OUT/bench_compile.jsonl" \
    2>&1 | grep -v '^{' | tee "$OUT/bench_compile.log"
step "trained ResNet-56 (quickstart, trained here): precision errors on its own data"
timeout 90 python3 -m landscape train configs/quickstart.yaml --run resnet56 --out /tmp/qs --quiet \
    2>&1 | tail -3
ck=$(find /tmp/qs -name final.pt | head -1)
[ -n "$ck" ] && timeout 60 python3 -m landscape bench --device cuda --models resnet56 \
    --checkpoint "$ck" --samples 1437 --grid 5x5 --precisions float32,tf32,bf16,fp16 \
    --json-out "$OUT/bench_trained.jsonl" 2>&1 | grep -v '^{' | tee "$OUT/bench_trained.log"
step "done"
