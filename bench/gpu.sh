#!/bin/sh
# Graft's benchmarks on a machine with a GPU, beside PyTorch's where it is installed there.
# Build here (`cargo build`), copy the repository with the built `graft` to that machine, then:
#
#     GRAFT=path/to/graft sh bench/gpu.sh [OUT_DIR]
#
# It runs `graft bench --backends wgpu,flex` (training steps on the GPU and on the CPU, the
# single-image latency, time to 80 % on the demo set) and, when python3 imports torch with CUDA,
# bench/pytorch_baseline.py on the GPU with the same split; everything goes to OUT_DIR (default
# ./gpu-bench) as JSON and text.
set -eu
GRAFT="${GRAFT:-target/debug/graft}"
OUT="${1:-gpu-bench}"
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
"$GRAFT" bench --backends wgpu,flex --json "$OUT/graft.json" 2>&1 | tee "$OUT/graft.txt"
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    python3 bench/pytorch_baseline.py --device cuda --graft-json "$OUT/graft.json" \
        --json "$OUT/pytorch.json" 2>&1 | tee "$OUT/pytorch.txt"
else
    echo "PyTorch with CUDA is not installed here: Graft's figures only" | tee "$OUT/pytorch.txt"
fi
