#!/usr/bin/env bash
# Unpacks Debian's nginx binary into $1 (default .venv/nginx) for the tests that put a real
# HTTP/2 proxy (grpc_pass) in front of taskq, as a service mesh or an ingress would. The
# package is only unpacked (dpkg -x), never installed: no service is started, nothing is
# configured system-wide; the tests run it on a free port with a configuration of their own.
set -euo pipefail

target=${1:-.venv/nginx}
binary="$target/usr/sbin/nginx"
if [ -x "$binary" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    echo "cannot fetch nginx here (needs apt-get and dpkg): the proxy tests need Debian's nginx package" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "unpacking nginx (Debian's nginx package) into $target for the proxy tests"
if ! (cd "$work" && apt-get download nginx >/dev/null 2>&1); then
    apt-get update >/dev/null
    (cd "$work" && apt-get download nginx >/dev/null 2>&1)
fi
mkdir -p "$target"
dpkg -x "$work"/nginx_*.deb "$target"
# Its shared libraries (PCRE2, OpenSSL, zlib) are on every Debian system; install any missing.
missing=$(ldd "$binary" | awk '/not found/ {print $1}')
if [ -n "$missing" ]; then
    echo "nginx needs libraries that are missing: $missing; installing Debian's packages for them" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpcre2-8-0 libssl3 zlib1g >/dev/null
fi
"$binary" -v
