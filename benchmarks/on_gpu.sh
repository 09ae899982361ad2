#!/usr/bin/env bash
# The GPU path on a CUDA machine whose python3 already holds torch (no venv, no network): the CUDA tests, the
# same-seed and resume tests on the host's CPU, then `best`'s settings chosen on validation (choose_best.py)
# and the choice scored on test; about 8 minutes on an H200. `fast` and `standard` on the GPU:
#   python3 benchmarks/time_to_accuracy.py --device cuda --recipes fast,standard --cnn-steps 0
# Usage: FASHIONLAB_DATA=/path/to/fashion-mnist bash benchmarks/on_gpu.sh [output folder]
# Needs numpy, scikit-learn, matplotlib, tqdm, pillow and pytest beside torch (the optional servers are not imported).
set -uo pipefail
out=$(realpath "${1:-.}")
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu_tests.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -4 | tee -a "$out/gpu_tests.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_training.py::test_same_seed_same_numbers \
    tests/test_muon.py::test_muon_run_resumes_exactly 2>&1 | grep "passed\|failed\|^E " | head -20 \
    | tee -a "$out/gpu_tests.txt"
cd benchmarks
# the ceil network is the choice of one CPU seed: compare it with the pruned fastnet_large (a probe network,
# benchmarks/probes/architectures.py) over three
python3 choose_best.py --device cuda --candidates pruned,ceil --seeds 3 --budget-seconds 330 2>&1 \
    | grep --line-buffered -v "^epoch=\|: test accuracy" | tee "$out/choose_best.txt"
