#!/usr/bin/env bash
# Drives studies/external-quadratic.toml from a shell: ask, compute, report, tell.
# Usage: scripts/external-example.sh [--db PATH]   (needs python3 to read the JSON)
set -euo pipefail
cd "$(dirname "$0")/.."
HPO=${HPO:-target/release/hpo}
STUDY=studies/external-quadratic.toml
while asked=$("$HPO" ask "$STUDY" "$@" 2>/dev/null); do
    read -r trial x lr layers < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); p=d["params"]; print(d["trial"], p["x"], p["lr"], p["layers"])' "$asked")
    # The "training": a loss that improves over 3 steps toward (x - 1)^2 + (log10 lr + 2.5)^2 + layers.
    for step in 1 2 3; do
        loss=$(python3 -c "import math; print(((${x} - 1) ** 2 + (math.log10(${lr}) + 2.5) ** 2 + ${layers}) * (1 + 1 / ${step}))")
        "$HPO" report-step "$STUDY" "$@" --trial "$trial" --step "$step" --value "$loss" > /dev/null
    done
    "$HPO" tell "$STUDY" "$@" --trial "$trial" --value "$loss"
done
"$HPO" show external-quadratic "$@" | head -5
