#!/usr/bin/env bash
# Install the `ray` extra (Ray Jobs client + a local head for the tests) into the active venv.
# Idempotent: does nothing when ray with its dashboard (job server) is already importable.
set -euo pipefail
cd "$(dirname "$0")/.."
if python -c "import ray, ray.job_submission, ray.dashboard" >/dev/null 2>&1; then
  echo "ray $(python -c 'import ray; print(ray.__version__)') already installed"
  exit 0
fi
pip install -q 'ray[default]>=2.9,<3'
python -c "import ray; print('installed ray', ray.__version__)"
