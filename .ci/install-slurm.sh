#!/usr/bin/env bash
# Install what the Slurm tests need: Debian's slurmctld, slurmd, slurm-client and munge.
# The tests start their own single-node cluster (config, munge key, state in a temp folder),
# so nothing here is configured or started. Idempotent: skips packages already installed.
set -euo pipefail
PACKAGES=(slurmctld slurmd slurm-client munge)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "slurm already installed ($(dpkg-query -W -f='${Version}' slurm-client))"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages start system daemons where systemd runs; the tests use their own, on their own
# ports and socket, so these are not needed (and are left alone if they are not running).
echo "installed ${missing[*]} ($(dpkg-query -W -f='${Version}' slurm-client))"
