"""The docs that tests keep honest: every setting is documented, README's two commands exist."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import psycopg
import pytest

from dbops.config import Settings, load_settings, to_libpq_url

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"`DBOPS_([A-Z0-9_]+)`", text))
    expected = {name.upper() for name in Settings.model_fields if name != "database_url"}
    assert expected - documented == set(), "add these to docs/settings.md"
    assert documented - expected == set(), "docs/settings.md lists settings that do not exist"
    assert "DATABASE_URL" in text


def test_settings_page_is_generated_from_the_model() -> None:
    """Each section's table is what ``scripts/settings_doc.py`` renders (defaults, wording)."""
    spec = importlib.util.spec_from_file_location(
        "settings_doc", ROOT / "scripts" / "settings_doc.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "docs" / "settings.md").read_text()
    assert module.updated(text) == text, "run `uv run python scripts/settings_doc.py`"


def test_readme_quick_start_is_two_make_targets() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        assert re.search(rf"^{target}: setup\b", makefile, re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_service_example_runs(
    clean_db: object,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (ROOT / "README.md").read_text()
    example = (
        readme.split("## Using the service API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    )
    monkeypatch.setenv("DATABASE_URL", database_url)
    with psycopg.connect(to_libpq_url(database_url), autocommit=True) as conn:
        conn.execute("DELETE FROM dbops_monitor.process_reports")  # other tests' processes
    load_settings.cache_clear()
    try:
        exec(compile(example, "README.md", "exec"), {})
    finally:
        load_settings.cache_clear()
    assert capsys.readouterr().out.split("\n")[:3] == ["OWNER", "['acme']", "['acme']"]
    # The paragraph after the example: the process reported itself (and said it closed),
    # with the service calls it made.
    with psycopg.connect(to_libpq_url(database_url), autocommit=True) as conn:
        rows = conn.execute(
            "DELETE FROM dbops_monitor.process_reports "
            "RETURNING pid, closed, report #> '{app,statements}'"
        ).fetchall()
        conn.execute("DELETE FROM dbops_monitor.process_samples")
    ((pid, closed, statements),) = rows
    assert (pid, closed) == (os.getpid(), True)
    assert any(s["name"] == "users.create" and s["count"] >= 1 for s in statements)


#: kind of dbops.workload.KINDS -> how README's workload paragraph names it.
WORKLOAD_PHRASES = {
    "role_check_cached": "cached role checks",
    "teams_of_user": "teams-of-a-user lists",
    "user_by_email": "user-by-email lookups",
    "team_by_slug": "team-by-slug lookups",
    "team_search": "team searches",
    "role_check": "uncached role checks",
    "profile_update": "profile updates",
    "team_members": "member lists",
    "invitation": "invitations",
    "membership": "membership changes",
    "login": "sign-ins",
    "team_create": "team creations",
}


def test_readme_states_the_workload_mix_the_code_runs() -> None:
    """The mix is a promise to whoever reads the dashboard during `make run`."""
    from dbops import workload

    readme = " ".join((ROOT / "README.md").read_text().split())
    paragraph = readme.split("`dbops workload` (and `make run`) mixes, per 100 operations:", 1)[1]
    paragraph = paragraph.split(".", 1)[0].strip()
    assert set(WORKLOAD_PHRASES) == set(workload.KINDS)
    assert sum(workload.KINDS.values()) == 100
    for kind, phrase in WORKLOAD_PHRASES.items():
        assert re.search(rf"(^|, |and ){workload.KINDS[kind]} {phrase}\b", paragraph), kind
    assert "(1 in 10 misses)" in paragraph
    assert "(1 in 100 with a wrong password" in paragraph
    assert workload.WRONG_PASSWORD_SHARE == 1 / 100
    assert workload.KEEP_CREATED_TEAMS == 5
