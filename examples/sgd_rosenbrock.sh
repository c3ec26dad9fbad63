#!/bin/sh
# A shell program as hpo's objective: gradient descent with momentum on the
# Rosenbrock valley, in POSIX sh and awk. After each step it prints one line in
# `name=value` form (Katib's format), which hpo reads as a step
# (studies/shell-sgd.toml):
#
#   step=3 loss=4.21 grad_norm=12.5
#
# Usage: sgd_rosenbrock.sh LR MOMENTUM STEPS
set -eu
lr=$1 momentum=$2 steps=$3
awk -v lr="$lr" -v mu="$momentum" -v steps="$steps" 'BEGIN {
  x = -1.5; y = 2; vx = 0; vy = 0
  for (s = 1; s <= steps; s++) {
    gx = -2 * (1 - x) - 400 * x * (y - x * x)
    gy = 200 * (y - x * x)
    vx = mu * vx - lr * gx; vy = mu * vy - lr * gy
    x += vx; y += vy
    loss = (1 - x) ^ 2 + 100 * (y - x * x) ^ 2
    if (loss != loss || loss > 1e12) { print "diverged at step " s > "/dev/stderr"; exit 3 }
    printf "step=%d loss=%.6g grad_norm=%.6g\n", s, loss, sqrt(gx * gx + gy * gy)
  }
}'
