"""Startup cost: `import dbops` and the `dbops` command load no heavy or optional package early."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dbops.cli import app
from dbops.cli.up import PERSONAS as HELP_PERSONAS
from dbops.ops.seed import PERSONAS

HEAVY = ("sqlalchemy", "alembic", "pydantic_settings", "psycopg", "psycopg_pool")
OPTIONAL = ("redis", "geoalchemy2", "prometheus_client", "streamlit")


def _loaded_after(code: str) -> set[str]:
    """Top-level packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import dbops",
        "import dbops.cli",
        "import dbops.db",
        "from dbops import __all__",
        # `dbops db status|url` need the cluster and the settings, not the pool or the ORM.
        "from dbops.db import EmbeddedCluster, Dsn, configured_dsn\nimport dbops.config",
    ],
)
def test_imports_load_no_heavy_or_optional_package(code: str) -> None:
    loaded = _loaded_after(code)
    heavy = set(HEAVY) - {"pydantic_settings"} if "dbops.config" in code else set(HEAVY)
    assert not loaded & heavy, code
    assert not loaded & set(OPTIONAL), code


@pytest.mark.parametrize(
    "code",
    ["import dbops.models", "import dbops.services", "import dbops.monitoring", "import dbops.ops"],
)
def test_the_core_loads_no_optional_package(code: str) -> None:
    """Redis, PostGIS (GeoAlchemy2), Prometheus and Streamlit are extras, loaded on use only."""
    assert not _loaded_after(code) & set(OPTIONAL), code


def test_help_runs_without_the_data_layer() -> None:
    loaded = _loaded_after(
        "import sys\nsys.argv = ['dbops', '--help']\nfrom dbops.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert not loaded & set(HEAVY)


def test_lazy_public_names_resolve() -> None:
    import dbops

    for name in dbops.__all__:
        assert getattr(dbops, name) is not None
    with pytest.raises(AttributeError):
        _ = dbops.no_such_name


@pytest.mark.parametrize(
    "args", [["--help"], ["seed", "--help"], ["db", "url", "--help"], ["status", "--help"]]
)
def test_help_shows_no_bool_metavar(args: list[str]) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output


def test_seed_help_names_the_personas_on_top_of_users() -> None:
    assert len(PERSONAS) == HELP_PERSONAS
    result = CliRunner().invoke(app, ["seed", "--help"], env={"COLUMNS": "200"})
    assert f"N+{len(PERSONAS)} users in all" in " ".join(result.output.split())


#: What a read-only command must not load: the ORM, the migration tool, the SQL parser of the
#: index advice. They were most of `dbops status`'s 4 s (bench/bench_cli.py).
NOT_FOR_READS = {"sqlalchemy", "alembic", "pglast"}


@pytest.mark.parametrize(
    "argv",
    [["status"], ["monitor", "checks"], ["monitor", "snapshot", "--json"], ["audit", "verify"]],
)
def test_read_only_commands_run_without_the_orm_alembic_or_the_sql_parser(
    argv: list[str], migrated: str
) -> None:
    """The command as a user runs it (a fresh process, against the test database): it answers,
    and the ORM, alembic and pglast were never imported."""
    code = (
        "import sys\n"
        f"sys.argv = ['dbops', *{argv!r}]\n"
        "from dbops.cli import main\n"
        "code = 0\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code or 0\n"
        "print('LOADED', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
        "print('EXIT', code)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")}
    env["DATABASE_URL"] = migrated
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    lines = out.stdout.splitlines()
    exit_line = next(line for line in lines if line.startswith("EXIT "))
    assert exit_line in ("EXIT 0", "EXIT 4"), out.stdout + out.stderr  # 4: a critical finding
    loaded = set(next(line for line in lines if line.startswith("LOADED ")).split()[1:])
    assert not loaded & NOT_FOR_READS, argv
