#!/usr/bin/env bash
# Makes sure a Chromium for the console's browser tests (tests/console) is installed, from
# Debian's `chromium` package when it is missing. Playwright drives it headless through its
# executable path: browsers cannot be downloaded by Playwright here. Only the package: nothing
# is started.
set -euo pipefail

for binary in chromium chromium-browser; do
    if command -v "$binary" >/dev/null; then
        exit 0
    fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "Chromium is not installed and cannot be installed here (needs root and apt-get): install Debian's chromium package" >&2
    exit 1
fi
echo "installing Chromium (Debian's chromium package) for the console's browser tests"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends chromium >/dev/null
fi
