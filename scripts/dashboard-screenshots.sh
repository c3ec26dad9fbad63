#!/usr/bin/env bash
# Renders the dashboard's pictures in docs/img/ (docs/dashboard.md) from real
# studies: the digits regularization study (60 trials, run in two halves a minute
# apart so it can be compared with itself) with `hpo confirm` of its best 3, the
# quickstart study, and the digits pruning study caught while it runs.
# Needs a release build of hpo and Chromium (Debian's chromium package).
# Usage: scripts/dashboard-screenshots.sh   (about 6 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
hpo="$PWD/target/release/hpo"
[ -x "$hpo" ] || { echo "build hpo first: cargo build --release" >&2; exit 1; }
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
db="$work/docs.sqlite"
study=digits-mlp-regularization

"$hpo" run "studies/$study.toml" --db "$db" --trials 30 >/dev/null
half="$(date -u +%Y-%m-%dT%H:%M)"
sleep $((61 - 10#$(date -u +%S)))
"$hpo" run "studies/$study.toml" --db "$db" >/dev/null
"$hpo" confirm "studies/$study.toml" --db "$db" --top 3 --seeds 3 >/dev/null
"$hpo" report "$study" --db "$db" --out "$work/report" >/dev/null
"$hpo" run studies/quickstart.toml --db "$db" >/dev/null

"$hpo" serve --db "$db" --bind 127.0.0.1:18081 2>"$work/serve.log" &
sleep 1
base=http://127.0.0.1:18081
shot() { # NAME WIDTH HEIGHT PATH
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$2,$3" \
    --virtual-time-budget=8000 --screenshot="docs/img/$1.png" "$base$4" 2>/dev/null
}
# The pruning study with a larger budget, caught while it runs.
sed 's/^trials = 60/trials = 400/' studies/digits-mlp-pruning.toml >"$work/pruning.toml"
"$hpo" run "$work/pruning.toml" --db "$db" >/dev/null 2>&1 &
sleep 15
shot dashboard-study-live 1280 1500 /studies/digits-mlp-pruning
shot dashboard-studies 1280 560 /
shot dashboard-phone 390 844 "/studies/$study"
shot dashboard-study 1280 5200 "/studies/$study"
pick="$(curl -s "$base/api/v1/studies/$study/report" | python3 -c 'import json,sys; print(json.load(sys.stdin)["recommendation"]["trial"])')"
shot dashboard-trial 1280 2300 "/studies/$study/trials/$pick"
shot dashboard-compare 1280 1250 "/compare?a=$study@$half&b=$study"
echo "wrote docs/img/dashboard-*.png (the study compared with itself at $half UTC)"
