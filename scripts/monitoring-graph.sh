#!/usr/bin/env bash
# Renders docs/img/prometheus-trials-by-state.png: Prometheus' own graph of the
# dashboard's "Trials by state" query while an external study runs against
# `hpo serve`, scraped with deploy/prometheus/prometheus.yml (every second here).
# Needs a release build of hpo, Prometheus (Debian's prometheus package) and
# Chromium (Debian's chromium package), all on this machine.
# Usage: scripts/monitoring-graph.sh [SECONDS]   (default 120)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-120}"
hpo="$PWD/target/release/hpo"
[ -x "$hpo" ] || { echo "build hpo first: cargo build --release" >&2; exit 1; }
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

"$hpo" serve --db "$work/demo.sqlite" --bind 127.0.0.1:18080 2>"$work/serve.log" &
sed -e 's/127.0.0.1:8080/127.0.0.1:18080/' -e 's/scrape_interval: 15s/scrape_interval: 1s/' \
    -e "s#- alerts.yml#- $PWD/deploy/prometheus/alerts.yml#" \
    deploy/prometheus/prometheus.yml >"$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address=127.0.0.1:19090 2>"$work/prometheus.log" &
sleep 2

# A training script's loop, paced: ask, three epochs, tell; every sixth trial fails.
python3 - "$seconds" <<'PY'
import json, sys, time, urllib.request
base = "http://127.0.0.1:18080/api/v1/studies/external-quadratic"
study = open("studies/external-quadratic.toml", "rb").read().replace(b"trials = 30", b"trials = 100000")
def post(path, body):
    request = urllib.request.Request(base + path, data=body, method="POST")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())
end = time.time() + float(sys.argv[1])
number = 0
while time.time() < end:
    asked = post("/ask", study if number == 0 else b"")
    trial = asked["trial"]
    for epoch in (1, 2, 3):
        post(f"/trials/{trial}/steps", json.dumps({"step": epoch, "value": 1.0 / epoch}).encode())
        time.sleep(0.05)
    tell = {"state": "fail"} if number % 6 == 5 else {"value": asked["params"]["x"] ** 2}
    post(f"/trials/{trial}/tell", json.dumps(tell).encode())
    number += 1
PY

query='sum by (state) (hpo_trials{study=~".*"})'
encoded="$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$query")"
url="http://127.0.0.1:19090/graph?g0.expr=$encoded&g0.tab=0&g0.range_input=2m&g0.stacked=0&g0.show_exemplars=0"
mkdir -p docs/img
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1000 \
    --virtual-time-budget=8000 --screenshot="$PWD/docs/img/prometheus-trials-by-state.png" "$url" 2>/dev/null
echo "wrote docs/img/prometheus-trials-by-state.png ($query)"
