#!/usr/bin/env bash
# Set up everything dbops needs on a fresh Debian/Ubuntu machine, then the Python environment.
# Idempotent and quick when everything is present: safe to run before every `make` target.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="0.13.9"
APT_PACKAGES=()

have_pg_server() {
    command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1
}
pg_major() {
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$bin" ] && basename "$(dirname "$bin")" || echo 15
}

have_pg_server || APT_PACKAGES+=("postgresql")
major=$(pg_major)
# PostGIS for the geospatial queries (tests cover them; without it only that feature is off).
# Both the control file and the library: removing the package alone leaves the control file.
if [ ! -f "/usr/share/postgresql/${major}/extension/postgis.control" ] \
    || ! ls /usr/lib/postgresql/"${major}"/lib/postgis-3.so >/dev/null 2>&1; then
    APT_PACKAGES+=("postgresql-${major}-postgis-3")
fi
# hypopg proves index advice with hypothetical indexes (monitoring tests use it).
if [ ! -f "/usr/share/postgresql/${major}/extension/hypopg.control" ] \
    || ! ls /usr/lib/postgresql/"${major}"/lib/hypopg.so >/dev/null 2>&1; then
    APT_PACKAGES+=("postgresql-${major}-hypopg")
fi
# pgBackRest: WAL archiving, base backups and point-in-time restore (`dbops backup pitr-*`).
command -v pgbackrest >/dev/null 2>&1 || APT_PACKAGES+=("pgbackrest")
# PgBouncer: the services are tested behind a real one in transaction pooling.
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || APT_PACKAGES+=("pgbouncer")
# Patroni 3 and etcd 3.4: the high-availability tests run a two-node cluster on loopback.
command -v patroni >/dev/null 2>&1 || APT_PACKAGES+=("patroni")
command -v etcd >/dev/null 2>&1 || APT_PACKAGES+=("etcd-server")
# Prometheus (promtool checks the alert rules; a test scrapes the exporter with a real server)
# and Debian's postgres_exporter (bench/bench_exporter.py compares against it).
command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 \
    || APT_PACKAGES+=("prometheus")
command -v prometheus-postgres-exporter >/dev/null 2>&1 \
    || APT_PACKAGES+=("prometheus-postgres-exporter")
# Debian's Chromium: the dashboard's browser test drives it through Playwright (no browser
# download; `playwright install` is never run).
command -v chromium >/dev/null 2>&1 || APT_PACKAGES+=("chromium")

if [ ${#APT_PACKAGES[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing ${APT_PACKAGES[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${APT_PACKAGES[@]}" >/dev/null
    else
        echo "bootstrap: missing system packages: ${APT_PACKAGES[*]}" >&2
        echo "bootstrap: install them (for example: sudo apt-get install ${APT_PACKAGES[*]})" >&2
        have_pg_server || exit 1
    fi
fi

if command -v uv >/dev/null 2>&1; then
    UV=(uv)
else
    if ! python3 -m uv --version >/dev/null 2>&1; then
        echo "bootstrap: installing uv ${UV_VERSION}"
        python3 -m pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
    fi
    UV=(python3 -m uv)
fi

"${UV[@]}" sync --frozen --quiet
