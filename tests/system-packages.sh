#!/bin/sh
# The system packages the test suite needs, installed with apt-get when one is missing:
# redis-server and valkey-server (the Redis store's tests run on both) and chromium with
# chromium-driver (the dashboard's browser tests). Run as root on a Debian-like machine; it
# does nothing when all are present. Valkey is not in Debian 12 (bookworm) itself: there its
# packages come from bookworm-backports, fetched with a package list of this script's own (in a
# temporary directory) and installed as local files, so the machine's apt sources stay as they
# are; their libraries come from the distribution.
set -eu
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v chromedriver >/dev/null 2>&1 || missing="$missing chromium-driver"
valkey=""
command -v valkey-server >/dev/null 2>&1 || valkey="valkey-server"
[ -z "$missing$valkey" ] && exit 0
echo "tests/system-packages.sh: installing$missing $valkey" >&2
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/system-packages.sh: cannot install$missing $valkey: needs root and apt-get" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ -n "$valkey" ] && [ -n "$(apt-cache policy valkey-server 2>/dev/null | grep 'Candidate: [0-9]')" ]; then
    missing="$missing valkey-server"  # the distribution has it (Debian 13 and later)
    valkey=""
fi
if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
[ -z "$valkey" ] && exit 0
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if [ -z "$codename" ]; then
    echo "tests/system-packages.sh: cannot install valkey-server: no VERSION_CODENAME in /etc/os-release" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb http://deb.debian.org/debian $codename-backports main" >"$work/sources.list"
chmod -R a+rwx "$work"  # apt fetches as its own user
own="-o Dir::Etc::SourceList=$work/sources.list -o Dir::Etc::SourceParts=/dev/null"
own="$own -o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache"
# shellcheck disable=SC2086
apt-get $own update -qq
# shellcheck disable=SC2086
(cd "$work" && apt-get $own download -qq valkey-server valkey-tools)
apt-get install -y -qq --no-install-recommends "$work"/valkey-server_*.deb "$work"/valkey-tools_*.deb >/dev/null
