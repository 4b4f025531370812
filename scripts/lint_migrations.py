"""Lint the offline SQL of every migration revision with squawk (``make lint``).

Each revision is linted on its own SQL (``alembic upgrade PREV:REV --sql``). A rule a revision
waives is waived in that revision's file, with its reason, as a module constant::

    SQUAWK_IGNORE = {"require-statement-timeout": "why this revision may skip it"}

Usage: ``uv run python scripts/lint_migrations.py [--pg-version 15]``; exit status 1 when
squawk reports anything, or when a waiver has no reason.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from dbops.config import Settings
from dbops.ops.migrate import MIGRATIONS_DIR, render_sql


def _waivers(script: ScriptDirectory, revision: str) -> dict[str, str]:
    module = script.get_revision(revision).module  # type: ignore[union-attr]
    waivers = getattr(module, "SQUAWK_IGNORE", {})
    if not isinstance(waivers, dict):
        raise SystemExit(f"{revision}: SQUAWK_IGNORE must be a dict of rule -> reason")
    return waivers


def main() -> int:
    """Render and lint every revision; print squawk's report; 0 when all are clean."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-version", default="15", help="PostgreSQL version squawk assumes")
    args = parser.parse_args()

    settings = Settings(_env_file=None, database_url="postgresql://lint@localhost/lint")  # type: ignore[call-arg]
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(cfg)
    failed = False
    with tempfile.TemporaryDirectory(prefix="squawk-") as tmp:
        for rev in reversed(list(script.walk_revisions())):
            waivers = _waivers(script, rev.revision)
            for rule, reason in waivers.items():
                if not str(reason).strip():
                    print(f"{rev.revision}: waiver of {rule} gives no reason", file=sys.stderr)
                    failed = True
            start = rev.down_revision or "base"
            if not isinstance(start, str):
                raise SystemExit(f"{rev.revision}: merge revisions are not supported here")
            sql_file = Path(tmp) / f"{rev.revision}.sql"
            sql_file.write_text(render_sql(settings, f"{start}:{rev.revision}"))
            command = ["squawk", f"--pg-version={args.pg_version}", str(sql_file)]
            if waivers:
                command.append(f"--exclude={','.join(sorted(waivers))}")
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            status = "ok" if result.returncode == 0 else "FAILED"
            waived = f" (waived: {', '.join(sorted(waivers))})" if waivers else ""
            print(f"squawk {rev.revision}: {status}{waived}")
            if result.returncode != 0:
                failed = True
                print(result.stdout + result.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
