#!/usr/bin/env bash
# hpo's GPU checks and benchmarks in one go on a GPU machine (PyTorch installed, for
# the comparisons). It uses the CUDA build of hpo that scripts/gpu-test.sh made on
# this machine, or the one scripts/gpu-prepare.sh put, with the CUDA test binaries
# and the datasets, under target/gpu-carry/ on a build machine (scripts/gpu-env.sh
# says which). From the repository root:
#   bash scripts/gpu-bench.sh                  # every section
#   SECTIONS="tests throughput" bash scripts/gpu-bench.sh
# Sections:
#   tests       the CUDA tests of hpo-kernels and hpo-train: each fused kernel
#               against the composite candle ops on the GPU and its CPU form; every
#               parameter of every model gets a gradient on the GPU; CUDA AdamW
#               against the CPU update.
#   throughput  training throughput of the MLP, the fashion-mnist CNN and the GPT
#               ($WORKLOADS) at batches $BATCHES (default "64 256") and precisions
#               $PRECISIONS (default "f32 bf16"): hpo (candle CUDA) against PyTorch
#               on the same card in each of $MODES (default: eager, and torch.compile
#               in modes max-autotune-no-cudagraphs and reduce-overhead), $REPS (3)
#               alternating runs of $STEPS (100) steps; medians and ratios at the end.
#   precision   bf16 autocast against f32: best validation loss and seconds per
#               epoch of one fixed fashion CNN and one fixed GPT, 3 seeds each.
#   study       the whole-study benchmark: $STUDY (default the 32-trial
#               studies/fashion-cnn-whole-study.toml) with trials_per_device K
#               from $KS (default "1 2 4 8"), then the same trials one at a time in
#               Optuna + PyTorch (scripts/study_twin.py; Optuna from wheels in .whl/ if present;
#               TWIN=0 skips it). A K of "auto" sets trials_per_device = "auto".
#               Each K's wall time is also given as its speed over K = 1's (list 1
#               first), with the lines where "auto" says how many it runs at once;
#               studies/digits-mlp-packed.toml is the packing benchmark.
# Results also go to $RESULTS_DIR (throughput.jsonl, the study's database).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh
sections=${SECTIONS:-tests throughput precision study}

if [[ " $sections " == *" tests "* ]]; then
  echo "== the CUDA tests of hpo-kernels and hpo-train"
  if [ -e "$carry/hpo-kernels-tests.xz" ]; then
    tests_rc=0
    for crate in kernels train; do
      python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('$carry/hpo-$crate-tests.xz'),open('/tmp/hpo-$crate-tests','wb'))"
      chmod +x "/tmp/hpo-$crate-tests"
      (cd "crates/$crate" && "/tmp/hpo-$crate-tests" --test-threads 1 cuda gpu 2>&1 | grep -E "^test |test result|panicked|differs|FAILED" | tail -40) || tests_rc=1
    done
  else
    (source scripts/gpu-build-env.sh && cargo test --release --features cuda -p hpo-kernels -p hpo-train -- --test-threads 1 cuda gpu)
    tests_rc=$?
  fi
fi

if [[ " $sections " == *" throughput "* ]]; then
  modes=${MODES:-eager max-autotune-no-cudagraphs reduce-overhead}
  echo "== throughput: hpo (candle CUDA) vs PyTorch ($modes), same card"
  : > "$results/throughput.jsonl"
  for rep in $(seq "${REPS:-3}"); do
    for w in ${WORKLOADS:-digits-mlp fashion-cnn jargon-transformer}; do
      for b in ${BATCHES:-64 256}; do
        for p in ${PRECISIONS:-f32 bf16}; do
          /tmp/hpo bench train --device cuda --workload "$w" --batch "$b" --steps "${STEPS:-100}" --precision "$p" --json | grep '^{' >> "$results/throughput.jsonl"
          for m in $modes; do
            python3 scripts/bench_torch.py --device cuda --workload "$w" --batch "$b" --steps "${STEPS:-100}" --precision "$p" --compile "$m" >> "$results/throughput.jsonl"
          done
        done
      done
    done
  done
  MODES="$modes" python3 - "$results/throughput.jsonl" <<'PY'
import json, os, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
modes = os.environ["MODES"].split()
keys = sorted({(r["workload"], r["batch"], r.get("precision", "f32")) for r in runs})
def med(w, b, p, impl, mode=None):
    xs = [r["throughput"] for r in runs if (r["workload"], r["batch"], r.get("precision", "f32"), r["impl"]) == (w, b, p, impl)
          and (mode is None or r.get("mode", "eager") == mode)]
    return statistics.median(xs) if xs else float("nan")
print(f"{'workload':20} {'batch':>5} {'prec':>4} {'hpo':>12} " + " ".join(f"{m[:14]:>14} {'hpo/' + m[:6]:>11}" for m in modes) + "  unit (median of runs)")
for w, b, p in keys:
    hpo = med(w, b, p, "hpo-candle")
    cells = []
    for m in modes:
        torch = med(w, b, p, "pytorch", m)
        cells.append(f"{torch:>14.0f} {hpo / torch:>11.2f}")
    unit = next(r["unit"] for r in runs if r["workload"] == w)
    print(f"{w:20} {b:>5} {p:>4} {hpo:>12.0f} " + " ".join(cells) + f"  {unit}")
PY
fi

if [[ " $sections " == *" precision "* ]]; then
  echo "== bf16 autocast against f32: one fixed configuration per model, 3 study seeds each"
  : > "$results/precision.jsonl"
  for model in cnn gpt; do
    if [ "$model" = cnn ]; then
      base=studies/fashion-cnn-whole-study.toml
      fixed='fixed = { blocks = 2, batch_size = 128, schedule = "cosine", augment = "none", lr = 1e-3, channels = 32, hidden = 256, dropout = 0.2, batch_norm = false, weight_decay = 1e-4 }'
    else
      base=studies/jargon-transformer.toml
      fixed='fixed = { context = 128, batch_size = 64, steps_per_epoch = 300, schedule = "cosine", warmup_epochs = 1, grad_clip = 1.0, lr = 1e-3, d_model = 256, heads = 4, layers = 4, dropout = 0.1, weight_decay = 0.01, tie_weights = true }'
    fi
    for seed in 1 2 3; do
      awk -v fixed="$fixed" -v seed="$seed" '
        /^\[space\]/ { print; print "precision = { choice = [\"f32\", \"bf16\"] }"; skip = 1; next }
        skip { next }
        /^\[early_stopping\]/ { drop = 1; next }
        /^\[/ { drop = 0 }
        drop { next }
        /^fixed = / { print fixed; next }
        /^seed = / { print "seed = " seed; next }
        /^trials = / { print "trials = 2"; next }
        /^kind = "random"/ { print "kind = \"grid\""; next }
        /^max_epochs = / { print "max_epochs = 3"; next }
        /^device = / { print "device = \"cuda:0\""; next }
        { print }' "$base" > /tmp/precision.toml
      /tmp/hpo run /tmp/precision.toml --db "/tmp/precision-$model-$seed.sqlite" > /dev/null 2>&1
      name=$(sed -n 's/^name = "\(.*\)"/\1/p' /tmp/precision.toml)
      /tmp/hpo export "$name" --db "/tmp/precision-$model-$seed.sqlite" --format json |
        python3 -c 'import json, sys
study = json.load(sys.stdin)
for t in study["trials"]:
    curves = t["curves"]
    secs = [v for s, v in curves["epoch_seconds"] if s > 1]
    print(json.dumps({"model": sys.argv[1], "seed": int(sys.argv[2]), "precision": t["params"]["precision"], "state": t["state"],
        "best_val_loss": min(v for _, v in curves["val_loss"]), "epoch_seconds": sum(secs) / len(secs)}))' "$model" "$seed" >> "$results/precision.jsonl"
    done
  done
  python3 - "$results/precision.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'model':6} {'precision':9} {'best val_loss (seeds)':>34} {'median':>8} {'epoch s (median)':>17}")
for model in ("cnn", "gpt"):
    for precision in ("f32", "bf16"):
        rs = [r for r in runs if (r["model"], r["precision"]) == (model, precision)]
        if rs:
            losses = " ".join(f"{r['best_val_loss']:.4f}" for r in rs)
            print(f"{model:6} {precision:9} {losses:>34} {statistics.median(r['best_val_loss'] for r in rs):>8.4f} {statistics.median(r['epoch_seconds'] for r in rs):>17.3f}")
PY
fi

if [[ " $sections " == *" study "* ]]; then
  study=${STUDY:-studies/fashion-cnn-whole-study.toml}
  name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$study")
  echo "== whole study: $study with K = ${KS:-1 2 4 8} trials at once on cuda:0, then Optuna + PyTorch one at a time"
  for k in ${KS:-1 2 4 8}; do
    tpd=$k; [[ $k =~ ^[0-9]+$ ]] || tpd="\\\"$k\\\""
    sed -e "s/^device = .*/device = \"cuda:0\"\ntrials_per_device = $tpd/" "$study" > "/tmp/k$k.toml"
    start=$(date +%s.%N)
    timeout "${STUDY_SECONDS:-400}" /tmp/hpo run "/tmp/k$k.toml" --db "/tmp/k$k.sqlite" > "/tmp/k$k.log" 2>&1
    rc=$?
    wall=$(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')")
    [ -z "${wall_1:-}" ] && [ "$k" = 1 ] && wall_1=$wall
    echo "hpo K=$k: exit $rc, wall $wall s${wall_1:+, $(python3 -c "print(f'{$wall_1 / $wall:.2f}')")x the speed of K=1}"
    # "auto" prints each step of its search for the number at once.
    grep -h "trial(s) at once" "/tmp/k$k.log" | sed 's/^/  /'
    cp "/tmp/k$k.sqlite" "$results/" 2>/dev/null || true
    /tmp/hpo export "$name" --db "/tmp/k$k.sqlite" --format json > "$results/hpo-k$k.json"
  done
  [ "${TWIN:-1}" = 1 ] || KS_TWIN=skip
  if [ "${KS_TWIN:-}" != skip ] && [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
  fi
  if [ "${KS_TWIN:-}" != skip ]; then
    PYTHONUNBUFFERED=1 timeout "${TWIN_SECONDS:-400}" python3 scripts/study_twin.py --db /tmp/k1.sqlite --study "$name" --device cuda --out "$results/twin.jsonl" | tail -3
    python3 scripts/study_twin.py --compare /tmp/k1.sqlite --study "$name" --out "$results/twin.jsonl" | tail -12
  fi
  for k in ${KS:-1 2 4 8}; do
    python3 - "$results/hpo-k$k.json" "$k" <<'PY'
import json, statistics, sys
study = json.load(open(sys.argv[1]))
done = [t for t in study["trials"] if t["state"] == "COMPLETE"]
mem = [t["user_attrs"].get("gpu_memory_mb") for t in done if t["user_attrs"].get("gpu_memory_mb")]
print(f"hpo K={sys.argv[2]}: {len(done)} complete, median val_loss {statistics.median(t['value'] for t in done):.4f}"
      + (f", GPU memory per trial {min(mem):.0f}-{max(mem):.0f} MB" if mem else ""))
PY
  done
fi

# A failed kernel test fails the script (after the other sections), so that
# `SECTIONS=tests bash scripts/gpu-bench.sh && ...` runs nothing on a broken build.
exit "${tests_rc:-0}"
