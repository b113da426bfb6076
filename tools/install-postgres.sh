#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl, postgres) are installed, from
# Debian's `postgresql` package when they are missing. Only the binaries: the tests start a
# throwaway cluster of their own (tests/postgres_cluster.py); no cluster is created here and
# no service is started.
set -euo pipefail

if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; }; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "PostgreSQL is not installed and cannot be installed here (needs root and apt-get): install Debian's postgresql package" >&2
    exit 1
fi
echo "installing PostgreSQL (Debian's postgresql package) for the tests"
# postgresql-common would create and start a "main" cluster: the tests need neither.
mkdir -p /etc/postgresql-common
if ! grep -q '^create_main_cluster' /etc/postgresql-common/createcluster.conf 2>/dev/null; then
    echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends postgresql >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends postgresql >/dev/null
fi
