#!/usr/bin/env bash
# Build the wheel, install it into a fresh venv outside the repository, and migrate a private
# throwaway embedded cluster with the installed `dbops`: proves the migrations ship in the wheel
# (dbops/_migrations) and nothing depends on the checkout. Cleans up after itself. `make wheel-check`.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=(uv)
command -v uv >/dev/null 2>&1 || UV=(python3 -m uv)

started=$(date +%s)
tmp=$(mktemp -d /tmp/dbops-wheel-check.XXXXXX)
# As root the cluster runs as the postgres user, which must be able to enter the directory.
chmod 0755 "$tmp"
venv="$tmp/venv"
export DBOPS_HOME="$tmp/home"
unset DATABASE_URL

cleanup() {
    if [ -x "$venv/bin/python" ]; then
        (cd "$tmp" && "$venv/bin/python" -c \
            'import os, pathlib; from dbops.db import EmbeddedCluster; EmbeddedCluster(pathlib.Path(os.environ["DBOPS_HOME"])).destroy()' \
            >/dev/null 2>&1) || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"${UV[@]}" build --wheel --quiet --out-dir "$tmp/dist"
wheel=$(ls "$tmp"/dist/dbops-*.whl)
"${UV[@]}" venv --quiet --python 3.11 "$venv"
"${UV[@]}" pip install --quiet --python "$venv/bin/python" "$wheel"

cd "$tmp"  # outside the repository: nothing of the checkout is importable from here
"$venv/bin/python" - <<'PY'
import dbops.ops.migrate as m
assert "site-packages" in str(m.MIGRATIONS_DIR), m.MIGRATIONS_DIR
print(f"wheel-check: migrations from {m.MIGRATIONS_DIR}")
PY
"$venv/bin/dbops" up --no-demo-data
current=$("$venv/bin/dbops" current)
echo "wheel-check: dbops current -> $current"
head=$("$venv/bin/python" -c 'from dbops.ops.migrate import head_revision; print(head_revision())')
case "$current" in
    *"$head"*) ;;
    *) echo "wheel-check: expected the database at head $head" >&2; exit 1 ;;
esac
"$venv/bin/dbops" db stop
echo "wheel-check: ok in $(( $(date +%s) - started ))s"
