#!/usr/bin/env bash
# Prints the pruning benchmark (hpo bench pruning) as one table, from the committed runs: the
# digits study (run on a 2-core VM, docs/runs/digits-pruning.jsonl) and the
# fashion-mnist study (run on one GPU with one trial at once,
# docs/runs/fashion-pruning.jsonl). Starts no run (`--start-within 0`), so it needs
# no GPU and no dataset: rows whose runs are missing show how many seeds they have.
# Usage: scripts/pruning-table.sh [path to hpo, default target/release/hpo]
set -euo pipefail
cd "$(dirname "$0")/.."
hpo=${1:-target/release/hpo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
scripts/fashion-gpu-study.sh '"cuda:0"' 1 "$tmp/fashion-cnn-gpus.toml"
cat docs/runs/digits-pruning.jsonl docs/runs/fashion-pruning.jsonl > "$tmp/runs.jsonl"
"$hpo" bench pruning --studies "studies/digits-mlp-pruning.toml,$tmp/fashion-cnn-gpus.toml" \
  --seeds 5 --runs "$tmp/runs.jsonl" --start-within 0
