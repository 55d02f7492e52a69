#!/usr/bin/env bash
# Install what the sandbox tests need: Debian's bubblewrap (bwrap), the tool the bot runs
# repository code in on its own host. Idempotent: skips it when installed. Then check that it
# can start a sandbox here (user namespaces allowed), since an installed bwrap that cannot is
# what the tests would otherwise trip over.
set -euo pipefail
PACKAGE=bubblewrap

if ! dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "$PACKAGE" >/dev/null
  echo "installed $PACKAGE ($(dpkg-query -W -f='${Version}' "$PACKAGE"))"
else
  echo "$PACKAGE already installed ($(dpkg-query -W -f='${Version}' "$PACKAGE"))"
fi

if ! bwrap --unshare-all --unshare-user --die-with-parent --ro-bind / / --proc /proc --dev /dev -- true; then
  echo "bwrap is installed but cannot start a sandbox here: user namespaces are not allowed" >&2
  echo "(sysctl kernel.unprivileged_userns_clone=1, or an AppArmor profile for bwrap)" >&2
  exit 1
fi
