#!/usr/bin/env bash
# The GPU path on a CUDA machine whose python3 already holds torch (no venv, no network): the CUDA tests,
# `best`'s settings chosen on validation and the choice scored on test, then `fast` and `standard` on the GPU.
#   FASHIONLAB_DATA=/path/to/fashion-mnist bash benchmarks/on_gpu.sh [output folder]
# Needs numpy, scikit-learn, matplotlib, tqdm, pillow and pytest beside torch (the optional servers are not imported).
set -uo pipefail
out=$(realpath "${1:-.}")
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15 | tee "$out/gpu_tests.txt"
cd benchmarks
python3 choose_best.py --device cuda --budget-seconds 300 2>&1 | grep --line-buffered -v "^epoch=\|: test accuracy" \
    | tee "$out/choose_best.txt"
python3 time_to_accuracy.py --device cuda --recipes fast,standard --cnn-steps 0 2>&1 | tee "$out/gpu_recipes.txt"
