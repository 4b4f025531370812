"""Every notebook runs top to bottom against a seeded test database and shows its key output."""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import psycopg
import pytest
from nbclient import NotebookClient
from psycopg import sql

from dbops.db import Dsn, EmbeddedCluster, open_database
from dbops.ops.migrate import upgrade
from dbops.ops.roles import grant_privileges
from dbops.ops.seed import seed
from dbops.telemetry import report as process_report
from tests.fixtures.db import make_settings

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))

#: An index the test creates and nothing scans: the index-health notebook must list it.
UNUSED_INDEX = "ix_nb_probe_unused"

#: Users (none a team owner) the test soft-deletes long ago: the runbook's archive dry run must
#: count them, and leave them where they are.
OLD_DELETED_USERS = 3
SOFT_DELETE_OLD_USERS = """
UPDATE users SET deleted_at = now() - interval '200 days'
WHERE id IN (
    SELECT u.id FROM users AS u
    WHERE NOT EXISTS (
        SELECT 1 FROM team_members AS m WHERE m.user_id = u.id AND m.role = 'OWNER'
    )
    ORDER BY u.id
    LIMIT %(n)s
)
"""

#: Patterns each notebook must print or render, beyond running without an error.
EXPECTED: dict[str, tuple[str, ...]] = {
    "01_query_performance.ipynb": (
        "total_ms",
        "mean_ms",
        # The test's own app process (below), live, holding one connection of its pool.
        r"1 live application process\(es\)",
        rf"notebook-probe \(pid {os.getpid()}\)</td>\s*<td>live</td>\s*"
        r"<td>[\d.]+</td>\s*<td>1</td>",
        r"captured interval\(s\)",
        r"plan: total cost [\d.]+",  # EXPLAIN of the worst explainable statement
        r"(Scan|Result|Aggregate|Limit|Sort)",
    ),
    "02_index_health.ipynb": (rf"unused indexes: [^\n]*public\.{UNUSED_INDEX}\b", "would free"),
    "03_teams_and_users.ipynb": ("signups", "zero-owner check: OK"),
    "04_runbook.ipynb": (
        r"health checks: \d+ finding\(s\)",
        r"maintenance plan: \d+ action\(s\) to run",
        "maintenance: dry run, nothing changed",
        r"backup \d{8}T\d{6}Z-[0-9a-f]{6} in ",
        r"restore drill: passed in [\d.]+ s",
        "hot reads ok on user",
        r"1 backup\(s\), 1 verified",
        r"archive dry run \(soft-deleted before [\d-]+\): [1-9][\d,]* row\(s\) would move",
        r"PITR: skipped",
    ),
}

#: The unused_indexes check on a cluster minutes old, for an index of a few kB (the notebook
#: lists the check's findings).
YOUNG_CLUSTER = {
    "DBOPS_CHECK_UNUSED_INDEX_MIN_BYTES": "0",
    "DBOPS_CHECK_UNUSED_INDEX_MIN_STATS_AGE_S": "0",
}

#: Parameters the test sets (papermill style: a cell injected after the ``parameters`` cell).
INJECTED = {"04_runbook.ipynb": "backup_dir = {backups!r}"}


def test_notebooks_exist() -> None:
    assert {p.name for p in NOTEBOOKS} == set(EXPECTED)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_with_parameters_cell_and_without_outputs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged"
    assert code[0].source.splitlines()[0] == "database_url = None"
    for cell in code:
        assert cell.outputs == [], f"stored output in {path.name}: {cell.source[:60]!r}"
        assert cell.execution_count is None


#: What a code cell with SQL of its own, or a cursor, would contain.
SQL_MARKERS = re.compile(
    r"[\"']\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP)\b|\.execute\(|psycopg", re.I
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_hold_no_sql(path: Path) -> None:
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            assert SQL_MARKERS.search(cell.source) is None, f"{path.name}: {cell.source[:80]!r}"


@pytest.fixture(scope="module")
def seeded_url(pg_cluster: EmbeddedCluster, migrated: str) -> Iterator[str]:
    """A fresh database of its own (other tests share the main one): migrated, seeded, with
    dbops' roles granted (the roles are the cluster's, made by ``migrated``)."""
    name = f"t_nb_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(pg_cluster.libpq_url(name), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    url = pg_cluster.url(name)
    settings = make_settings(url)
    upgrade(url, settings, "head")
    db = open_database(settings, url)
    try:
        seed(db, users=200, teams=20, seed=1, replace=True)
        with db.connection() as conn:
            grant_privileges(conn)
    finally:
        db.close()
    with psycopg.connect(pg_cluster.libpq_url(name), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE INDEX {} ON teams (updated_at, name)").format(
                sql.Identifier(UNUSED_INDEX)
            )
        )
        conn.execute(SOFT_DELETE_OLD_USERS, {"n": OLD_DELETED_USERS})
    yield url
    with psycopg.connect(pg_cluster.libpq_url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _outputs_text(book: Any) -> str:
    """Every stream, HTML and plain-text output of the executed notebook, joined."""
    parts: list[str] = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                parts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                for mime in ("text/html", "text/plain"):
                    if mime in out.data:
                        parts.append(str(out.data[mime]))
    return "\n".join(parts)


def _svgs(book: Any) -> list[str]:
    return [
        str(out.data["image/svg+xml"])
        for cell in book.cells
        for out in cell.get("outputs", [])
        if out.output_type in ("execute_result", "display_data") and "image/svg+xml" in out.data
    ]


def _mimetypes(book: Any) -> set[str]:
    return {
        mime
        for cell in book.cells
        for out in cell.get("outputs", [])
        if out.output_type in ("execute_result", "display_data")
        for mime in out.data
    }


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, seeded_url: str, tmp_path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    backups = tmp_path / "backups"
    if path.name in INJECTED:
        at = next(i for i, c in enumerate(book.cells) if "parameters" in c.metadata.get("tags", []))
        injected = nbformat.v4.new_code_cell(INJECTED[path.name].format(backups=str(backups)))
        injected.metadata["tags"] = ["injected-parameters"]
        book.cells.insert(at + 1, injected)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBOPS_")}
    env.update(YOUNG_CLUSTER)
    env["DATABASE_URL"] = seeded_url
    # The read-only notebooks (02, 03) read as dbops_readonly (dbops.db.readonly_dsn), as they
    # do on the embedded default; 01 (captures history, may run a workload) and the runbook
    # (backups) keep the administrator's URL.
    env["DBOPS_DASHBOARD_DATABASE_URL"] = seeded_url.replace("postgres@", "dbops_readonly@", 1)
    env["DBOPS_HOME"] = str(tmp_path / "home")  # never the developer's embedded cluster
    client = NotebookClient(
        book,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    with contextlib.ExitStack() as app:
        if path.name == "01_query_performance.ipynb":  # an application process, reporting
            probe = make_settings(
                seeded_url, process_report_s=3600.0, process_name="notebook-probe"
            )
            app_db = app.enter_context(
                open_database(probe, Dsn.parse(seeded_url).as_user("dbops_app").libpq)
            )
            app.enter_context(app_db.pool.connection())
            reporter = process_report.reporter()
            assert reporter is not None
            assert reporter.report_now()
        client.execute(env=env)  # raises CellExecutionError on the first failing cell

    errors = [
        out for cell in book.cells for out in cell.get("outputs", []) if out.output_type == "error"
    ]
    assert errors == []
    text = _outputs_text(book)
    (tmp_path / "outputs.txt").write_text(text, encoding="utf-8")  # for a failing run
    if path.name in ("02_index_health.ipynb", "03_teams_and_users.ipynb"):
        assert "dbops_readonly@" in text  # the "database:" line names the role it read as
    assert "<table" in text, "no DataFrame rendered"
    # Charts are static SVG (vl-convert renders them in the kernel): they show offline and in a
    # saved notebook. Vega-embed would load JavaScript from a CDN: blank without internet.
    svgs = _svgs(book)
    assert svgs, "no chart rendered"
    assert "image/svg+xml" in _mimetypes(book)
    assert not any(m.startswith("application/vnd.vegalite") for m in _mimetypes(book))
    for needs_network in ("vegaEmbed", "cdn.jsdelivr.net", "<script"):
        assert needs_network not in text, needs_network
    for expected in EXPECTED[path.name]:
        assert re.search(expected, text), f"{path.name}: {expected!r} not in the outputs"
    if path.name == "01_query_performance.ipynb":
        # 64-bit queryids reach the browser as strings (a JavaScript number rounds them and
        # merges two statements into one bar).
        # The bars are labelled with the full queryids of the table (a queryid drawn as a
        # number would round to ...000 and merge two statements into one bar).
        drawn = {t for svg in svgs for t in re.findall(r">(-?\d{12,})<", svg)}
        tabled = set(re.findall(r">(-?\d{12,})<", text))
        assert drawn, "no queryid label in the charts"
        assert drawn <= tabled, drawn - tabled
    if path.name == "04_runbook.ipynb":
        _check_runbook_effects(seeded_url, backups)
    # The notebook on disk is untouched (outputs stay stripped).
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(
        nbformat.writes(nbformat.read(path, as_version=4))
    )


def _check_runbook_effects(url: str, backups: Path) -> None:
    """The runbook wrote one verified backup where it was told, and changed no data."""
    from dbops.ops.backup import read_manifests

    (manifest,) = read_manifests(backups)
    assert manifest.last_drill is not None
    assert manifest.last_drill.ok
    assert manifest.verified_at is not None
    settings = make_settings(url)
    db = open_database(settings, url)
    try:
        from dbops.ops import archive

        status = archive.status(db)
        assert status.archived.total == 0, "the archive step must be a dry run"
        assert status.soft_deleted_users == OLD_DELETED_USERS
        with db.connection() as conn:
            for table in ("users", "teams", "team_members"):
                count = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                ).fetchone()
                assert count is not None
                assert manifest.rows("public", table) == count[0], table
    finally:
        db.close()


@pytest.mark.slow
def test_a_notebook_started_from_its_folder_reads_the_projects_running_cluster(
    seeded_url: str, pg_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    """`jupyter lab notebooks/`: the kernel starts in notebooks/, with no DATABASE_URL.

    The project's .dbops (here: the test cluster's home, linked in) is found from the
    subfolder; the notebook reads it as dbops_readonly and creates no cluster of its own.
    """
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / ".dbops").symlink_to(pg_cluster.home, target_is_directory=True)
    book = nbformat.read(NOTEBOOKS_DIR / "02_index_health.ipynb", as_version=4)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DBOPS_") and k not in ("DATABASE_URL", "PGHOST", "PGPORT")
    }
    env["DBOPS_EMBEDDED_DATABASE"] = urlsplit(seeded_url).path.lstrip("/")
    env.update(YOUNG_CLUSTER)
    client = NotebookClient(
        book,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(project / "notebooks")}},
    )
    client.execute(env=env)
    text = _outputs_text(book)
    assert re.search(rf"unused indexes: [^\n]*public\.{UNUSED_INDEX}\b", text), text[:2000]
    assert "dbops_readonly@" in text
    assert sorted(p.name for p in (project / "notebooks").iterdir()) == []  # no .dbops there
