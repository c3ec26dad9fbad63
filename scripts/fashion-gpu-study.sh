#!/usr/bin/env bash
# Writes the fashion-mnist study as the GPU pruning benchmark runs it:
# studies/fashion-cnn.toml with its `device` line replaced by a `devices` list and
# trials_per_device. Usage: scripts/fashion-gpu-study.sh DEVICES TPD OUTFILE, e.g.
# scripts/fashion-gpu-study.sh '"cuda:0"' 1 studies/fashion-cnn-gpus.toml.
# A benchmark run's fingerprint covers this text, so gpu-pruning.sh (which runs it)
# and pruning-table.sh (which reads the recorded runs back) both write it here.
set -euo pipefail
cd "$(dirname "$0")/.."
sed -e "s/^device = .*/devices = [$1]\ntrials_per_device = $2/" studies/fashion-cnn.toml > "$3"
