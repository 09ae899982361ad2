#!/bin/bash
# `fast` on the test set over 5 seeds, plain and distilled from a teacher run (first argument; docs/RESULTS.md's
# teacher is `fashionlab train --recipe best --label-smoothing 0 --name teacher60 --runs-dir /tmp/kd`: best
# without label smoothing on all 60,000 images). Prints: kind, seed, test accuracy, training seconds.
TEACHER=${1:?usage: benchmarks/distill_fast.sh TEACHER_RUN [ROOT]}
ROOT=${2:-/tmp/distill_fast}
cd "$(dirname "$0")/.."
export GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=100000000000
for kind in plain kd; do
  for s in 0 1 2 3 4; do
    extra=""; [ $kind = kd ] && extra="--distill-from $TEACHER"
    .venv/bin/fashionlab train --recipe fast --seed $s --name fast-$kind-s$s --runs-dir "$ROOT" --no-progress --overwrite $extra > /dev/null 2>&1
    .venv/bin/python -c "import json; m=json.load(open('$ROOT/fast-$kind-s$s/metrics.json')); print('$kind', $s, m['accuracy'], m['train_seconds'])"
  done
done
