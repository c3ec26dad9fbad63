#!/usr/bin/env bash
# Where a training step's GPU time goes: runs `hpo bench train` under Nsight
# Compute (ncu, measuring each kernel's duration only) and prints the kernels with
# the most total time. On the GPU machine, with a CUDA build (scripts/gpu-env.sh):
#   WORKLOADS="fashion-cnn:256 jargon-transformer:256" bash scripts/gpu-profile.sh
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
for wb in ${WORKLOADS:-fashion-cnn:256 jargon-transformer:256}; do
  w=${wb%%:*} b=${wb##*:}
  echo "== $w, batch $b: kernels by total GPU time over 3 warm-up and ${STEPS:-2} timed steps"
  "$ncu" --csv --metrics gpu__time_duration.sum /tmp/hpo bench train --device cuda \
    --workload "$w" --batch "$b" --steps "${STEPS:-2}" > "$results/ncu-$w-$b.csv" 2> /dev/null
  python3 - "$results/ncu-$w-$b.csv" <<'PY'
import csv, collections, sys
scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3, "second": 1e6, "s": 1e6}
total, count = collections.Counter(), collections.Counter()
rows = csv.reader(l for l in open(sys.argv[1]) if l.startswith('"'))
header = next(rows)
name_at, unit_at, value_at = header.index("Kernel Name"), header.index("Metric Unit"), header.index("Metric Value")
for r in rows:
    name = r[name_at].split("(")[0].split("<")[0][:60]
    total[name] += float(r[value_at].replace(",", "")) * scale[r[unit_at]]
    count[name] += 1
all_us = sum(total.values())
print(f"{sum(count.values())} kernels, {all_us / 1e3:.1f} ms")
for name, us in total.most_common(25):
    print(f"{us / 1e3:9.2f} ms {100 * us / all_us:5.1f}% {count[name]:6d}x  {name}")
PY
done
