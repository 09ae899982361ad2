#!/usr/bin/env bash
# The GPU path on a CUDA machine whose python3 already holds torch (no venv, no network): the CUDA tests,
# then every recipe on the GPU, then `fast`/`standard` again reading the loss back every step.
#   FASHIONLAB_DATA=/path/to/fashion-mnist bash benchmarks/on_gpu.sh [output folder]
# Needs numpy, scikit-learn, matplotlib, tqdm, pillow and pytest beside torch (the optional servers are not imported).
set -euo pipefail
out=${1:-.}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$out/gpu_tests.txt"
cd benchmarks
python3 time_to_accuracy.py --device cuda --best-seeds 1 --cnn-steps 0 2>&1 | tee "$out/gpu_recipes.txt"
python3 time_to_accuracy.py --device cuda --recipes fast,standard --seeds 3 --cnn-steps 0 --gpu-sync-every 1 \
    2>&1 | tee "$out/gpu_recipes_sync_every_step.txt"
