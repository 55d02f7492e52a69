#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/e2e/test_browser.py), driven by Playwright's
# Python package (installed with '.[test]'; it carries its driver, and uses this system browser:
# `playwright install` would download one). Idempotent: does nothing when chromium is there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    echo "chromium: $(chromium --version 2>/dev/null || chromium-browser --version)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
chromium --version
