#!/usr/bin/env bash
# Runs all of hpo's tests on a fresh machine, installing what they need first:
# - Python 3 with venv (the Optuna interop tests make a venv with Optuna 5.0.0
#   under target/, from PyPI, on first use);
# - the Fashion-MNIST and Jargon File datasets, from Debian's packages
#   dataset-fashion-mnist and jargon-text, unless $HPO_DATA_DIR already has them;
# - Prometheus and promtool (Debian's prometheus package), for the test of the
#   monitoring kit in deploy/;
# - Chromium and Node.js (Debian's chromium and nodejs packages), for the
#   dashboard's tests in a real headless browser and its script's unit tests;
# - procps (pgrep, kill), for the command objective;
# - PostgreSQL (Debian's postgresql package), for the PostgreSQL store's tests,
#   which start throwaway servers of their own.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
packages=()
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || packages+=(python3 python3-venv python3-pip)
have() { [ -n "${HPO_DATA_DIR:-}" ] && [ -e "$HPO_DATA_DIR/$1" ]; }
if ! have fashion-mnist/train-images-idx3-ubyte.gz && [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  packages+=(dataset-fashion-mnist)
fi
if ! have jargon-file/jargon.txt.gz && [ ! -e /usr/share/doc/jargon-text/jargon.txt.gz ]; then
  packages+=(jargon-text)
fi
if [ ${#packages[@]} -gt 0 ]; then
  as_root apt-get update -q
  # jargon-text installs under /usr/share/doc, which minimal images exclude from
  # dpkg; include its folder explicitly.
  as_root apt-get install -y -q -o Dpkg::Options::=--path-include=/usr/share/doc/jargon-text/* "${packages[@]}"
fi

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  as_root apt-get update -q
  # Only the server and promtool: its recommended exporters are not needed.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
fi

# procps: pgrep and kill, with which the command objective's tests watch and
# signal processes.
if ! command -v pgrep >/dev/null || ! { [ -x /usr/bin/kill ] || [ -x /bin/kill ]; }; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends procps
fi

# PostgreSQL: the tests start throwaway servers of their own
# (scripts/pg-test-cluster.sh), as the postgres user when run as root.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v runuser >/dev/null; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql util-linux
fi

if ! command -v chromium >/dev/null || ! command -v node >/dev/null; then
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium nodejs fonts-dejavu-core
fi

cargo test --workspace "$@"
