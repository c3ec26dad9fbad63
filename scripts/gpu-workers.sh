#!/usr/bin/env bash
# The multi-GPU checks (several workers and devices), in one go on a GPU machine (2 GPUs for part 1; one is
# enough for part 2). With a CUDA build of hpo (scripts/gpu-env.sh says which).
# On the GPU machine, from the repository root: bash scripts/gpu-workers.sh
#  1. A fashion-mnist CNN study spread over every visible GPU with
#     `devices = [...]` and `trials_per_device = 2`: which trial ran where, wall time,
#     and the report's timeline (written to $RESULTS_DIR).
#  2. Out of memory: one transformer trial alone measures its peak GPU memory; a
#     PyTorch process then holds all but ~1.5x that on cuda:0, and a study with
#     `trials_per_device = 2` runs there: the second trial runs out of memory, is
#     queued again, and the device goes on with one trial at a time.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu-env.sh

echo "== 1. fashion-mnist CNN, 16 trials over $n_gpus GPU(s), 2 trials per GPU"
sed -e "s/^device = .*/devices = [$devices]\ntrials_per_device = 2/" \
    -e "s/^trials = .*/trials = 16/" -e "s/^max_epochs = .*/max_epochs = 4/" \
    -e "s/^name = .*/name = \"fashion-spread\"/" studies/fashion-cnn.toml > /tmp/spread.toml
grep -E "^(devices|trials_per_device|trials|max_epochs)" /tmp/spread.toml
start=$(date +%s.%N)
/tmp/hpo run /tmp/spread.toml --db /tmp/workers.sqlite 2>&1 | tail -4
echo "wall seconds: $(python3 -c "print(round($(date +%s.%N) - $start, 1))")"
/tmp/hpo export fashion-spread --db /tmp/workers.sqlite --format json | python3 -c "
import json, sys, collections
d = json.load(sys.stdin)
by = collections.Counter(t['system_attrs'].get('hpo:device') for t in d['trials'])
owners = {t['system_attrs'].get('hpo:owner') for t in d['trials']}
states = collections.Counter(t['state'] for t in d['trials'])
print('trials per device:', dict(by), '| states:', dict(states), '| processes:', len(owners))
"
/tmp/hpo report fashion-spread --db /tmp/workers.sqlite --out "$results/report-spread" | tail -1

echo "== 2. out of memory on a shared GPU"
cat > /tmp/oom.toml <<'EOF'
[study]
name = "oom"
metric = "val_bits_per_char"
direction = "minimize"
seed = 5
trials = 4

[objective]
kind = "candle"
model = "transformer"
dataset = "jargon"
max_epochs = 1
device = "cuda:0"
trials_per_device = 2
fixed = { context = 256, batch_size = 96, steps_per_epoch = 30, eval_batches = 4, d_model = 512, heads = 8, layers = 6 }

[space]
lr = { float = [3e-4, 3e-3], log = true }
EOF
# Peak memory of one trial alone.
sed -e "s/^trials = 4/trials = 1/" -e "s/^trials_per_device = 2/trials_per_device = 1/" \
    -e "s/^name = \"oom\"/name = \"oom-probe\"/" /tmp/oom.toml > /tmp/oom-probe.toml
base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0)
(while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0; sleep 0.1; done) > /tmp/mem.log &
poll=$!
/tmp/hpo run /tmp/oom-probe.toml --db /tmp/oom.sqlite 2>&1 | tail -2
kill $poll
peak=$(sort -n /tmp/mem.log | tail -1)
trial_mib=$((peak - base))
echo "one trial alone: peak $trial_mib MiB above the idle $base MiB"
free=$(nvidia-smi --query-gpu=memory.free --format=csv,noheader,nounits -i 0)
hold=$((free - trial_mib * 3 / 2))
echo "holding $hold MiB of $free MiB free on cuda:0, leaving $((free - hold)) MiB"
python3 -c "
import torch, time, sys
x = torch.empty($hold * 1024 * 1024, dtype=torch.uint8, device='cuda:0')
print('held', flush=True)
time.sleep(600)
" > /tmp/hog.log 2>&1 &
hog=$!
for _ in $(seq 100); do grep -q held /tmp/hog.log && break; sleep 0.2; done
/tmp/hpo run /tmp/oom.toml --db /tmp/oom.sqlite 2>&1 | grep -E "out of memory|budget met|error" | head
kill $hog
/tmp/hpo export oom --db /tmp/oom.sqlite --format json | python3 -c "
import json, sys
d = json.load(sys.stdin)
for t in d['trials']:
    a = t['system_attrs']
    print(t['number'], t['state'], 'retry_of', a.get('hpo:retry_of'), (a.get('fail_reason') or '')[:160])
"
cp /tmp/workers.sqlite /tmp/oom.sqlite "$results/" 2>/dev/null || true
