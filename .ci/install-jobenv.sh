#!/usr/bin/env bash
# The one job environment the real-repo suite's training jobs run in: torch (CPU-capable) and the
# pinned requirements of the four repositories under ../shared/data/realrepos, installed together
# into .jobenv/ (git-ignored). Idempotent: a stamp of the requirements it was built from makes a
# second run a no-op. Without the realrepos data there is nothing to run, so nothing is built.
set -euo pipefail
cd "$(dirname "$0")/.."
jobenv=${FIX_AND_RELAUNCH_JOBENV:-$PWD/.jobenv}
data=${FIX_AND_RELAUNCH_REALREPOS:-$PWD/../shared/data/realrepos}
if [ ! -d "$data" ]; then
  echo "install-jobenv: $data is absent; the real-repo suite will skip"
  exit 0
fi
# The pins the tiny runs were verified with, and what each repository itself declares (a job
# launched without launch.setup installs the latter first: with it all here, that install is a
# quick no-op that needs no network).
requirements=("$data"/*/requirements.txt)
for declared in "$data"/*/upstream/requirements.txt; do
  if [ -f "$declared" ]; then requirements+=("$declared"); fi
done
# torchvision needs the torch it was built for (README of realrepos: "Environment").
pins="torch==2.14.1 torchvision==0.29.1"
stamp="$jobenv/.requirements.sha256"
want=$( (echo "$pins"; cat "${requirements[@]}") | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$jobenv/bin/python" ]; then
  echo "install-jobenv: $jobenv is up to date"
  exit 0
fi
python3 -m venv "$jobenv"
args=()
for file in "${requirements[@]}"; do args+=(-r "$file"); done
# shellcheck disable=SC2086  # the pins are words
"$jobenv/bin/pip" install -q $pins "${args[@]}" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
"$jobenv/bin/python" -c "import torch, torchvision, timm, lightning, tyro, gymnasium, hydra, wandb"
echo "$want" > "$stamp"
echo "install-jobenv: $jobenv ready ($("$jobenv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
