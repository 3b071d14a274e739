#!/bin/sh
# The system packages the test suite needs, installed with apt-get when one is missing:
# redis-server (the Redis store's tests) and chromium with chromium-driver (the dashboard's
# browser tests). Run as root on a Debian-like machine; it does nothing when all are present.
set -eu
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
[ -z "$missing" ] && exit 0
echo "tests/system-packages.sh: installing$missing" >&2
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/system-packages.sh: cannot install$missing: needs root and apt-get" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
