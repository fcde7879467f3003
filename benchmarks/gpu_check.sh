#!/usr/bin/env bash
# The checks a lent GPU machine runs in one call (README, Speed): `bash benchmarks/gpu_check.sh
# [STEP...]` with steps machine, tests, bench, layout, compiled, surface, trained, modes (default:
# all but layout and modes; about 9 minutes on an H200: pass fewer steps to fit a call's limit).
# Logs and JSON lines go under $OUT. Uses the machine's own python3 and packages; the project is
# put on PYTHONPATH, not installed.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
step() { echo "=== $1 ($(date +%T))"; }
BENCH="python3 -m landscape bench --device cuda --quiet"

machine() {
    step "machine"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
}
tests() {
    step "GPU tests"
    timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_bench.py \
        2>&1 | tail -25
}
bench_all() {
    step "bench: resnet20 and resnet56, every precision, 20,000 images, batch = raw's best"
    timeout 180 $BENCH --models resnet20,resnet56 --samples 20000 \
        --precisions float32,tf32,bf16,fp16 --points-per-call 1,4 --json-out "$OUT/bench.jsonl" \
        | grep -v '^{'
}
layout() {
    step "bench: exact float32 resnet56 in NHWC (auto is NCHW on a GPU), batch = raw's best"
    timeout 90 $BENCH --models resnet56 --samples 20000 --precisions float32 --channels-last on \
        --no-baseline --json-out "$OUT/bench_layout.jsonl" | grep -v '^{'
}
compiled() {
    step "bench: torch.compile, resnet56"
    timeout 150 $BENCH --models resnet56 --samples 20000 --precisions float32,tf32,bf16 --compile \
        --no-baseline --json-out "$OUT/bench_compile.jsonl" | grep -v '^{'
}
surface() {
    # A 31x31 grid amortizes compilation (214 s on an H200, 2026-11-26); a 3x3 one is all warm-up.
    step "end to end: resnet56 on 50,000 images, bf16 compiled 31x31 and exact float32 5x5"
    timeout 300 python3 benchmarks/surface_timing.py --model resnet56 --samples 50000 --grid 31 \
        --precisions bf16 --compile --device cuda --json-out "$OUT/surface.jsonl" | grep -v '^{'
    timeout 60 python3 benchmarks/surface_timing.py --model resnet56 --samples 50000 --grid 5 \
        --precisions float32 --device cuda --json-out "$OUT/surface.jsonl" | grep -v '^{'
}
trained() {
    step "trained ResNet-56 (quickstart, trained here): precision errors on its own data"
    timeout 90 python3 -m landscape train configs/quickstart.yaml --run resnet56 --out /tmp/qs \
        --quiet 2>&1 | tail -1
    ck=$(find /tmp/qs -name final.pt | head -1)
    [ -n "$ck" ] && timeout 60 $BENCH --models resnet56 --checkpoint "$ck" --samples 1437 \
        --grid 5x5 --precisions float32,tf32,bf16,fp16 --json-out "$OUT/bench_trained.jsonl" \
        | grep -v '^{'
}
modes() {
    step "raw resnet56 forward, bf16 channels-last, batch 4000: eager vs compile modes"
    timeout 150 python3 benchmarks/compile_modes.py | tee "$OUT/modes.log"
}

steps=${*:-machine tests bench compiled surface trained}
for s in $steps; do
    case $s in
        bench) bench_all ;;
        *) $s ;;
    esac
done 2>&1 | tee -a "$OUT/gpu_check.log"
step "done"
