#!/usr/bin/env bash
# Throughput on a machine with a CUDA GPU, as one short prepared run (a lent device's minutes
# are counted): torch on CUDA beside the CPU backends in process (network and post-processing
# apart), then issue 30's three whole-process ratios with --device cuda (medians of 3). JSON
# goes to $OUT (default docs/results); dsb2018 from $DATA (default ../shared/data/dsb2018).
# Usage: bash scripts/gpu_throughput.sh        (about 5 minutes on one GPU and 16 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
out=${OUT:-docs/results}
data=${DATA:-../shared/data/dsb2018}
mkdir -p "$out"
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible to torch'; print(torch.cuda.get_device_name(0))"
$PY -m benchmarks.throughput inprocess --device all --data "$data" --out "$out/throughput_inprocess_gpu.json"
$PY -m benchmarks.throughput ratios --device cuda --repeats 3 --data "$data" --out "$out/throughput_ratios_gpu.json"
