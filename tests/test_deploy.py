"""The production examples in deploy/ stay runnable: valid units and manifests, real commands.

systemd units are checked by ``systemd-analyze verify`` (with ExecStart pointed at this venv's
``dbops``); the Kubernetes CronJobs are checked field by field against the API models of the
official ``kubernetes`` client (an unknown or misspelt field fails); and every ``dbops ...``
command either of them runs is resolved in the real command tree, options included, so renaming a
command or an option breaks this test instead of a 2 a.m. job.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dbops.cli._app import app

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD = ROOT / "deploy" / "systemd"
KUBERNETES = ROOT / "deploy" / "kubernetes" / "cronjobs.yaml"


def _dbops_commands() -> list[list[str]]:
    """Every ``dbops ...`` invocation in deploy/, as argv lists without the program."""
    found: list[list[str]] = []
    for unit in sorted(SYSTEMD.glob("*.service")):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                argv = shlex.split(line.removeprefix("ExecStart="))
                assert Path(argv[0]).name == "dbops", line
                found.append(argv[1:])
    for doc in yaml.safe_load_all(KUBERNETES.read_text()):
        container = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        for step in container["args"][0].split("&&"):
            argv = shlex.split(step)
            assert argv[0] == "dbops", step
            found.append(argv[1:])
    return found


def test_deploy_runs_commands_that_exist() -> None:
    commands = _dbops_commands()
    assert {" ".join(argv[:2]) for argv in commands} >= {
        "backup create",
        "backup verify",
        "backup prune",
        "maintain run",
        "archive run",
        "monitor capture",
    }
    runner = CliRunner()
    for argv in commands:
        # --help is eager: it stops before running anything, but only after click has resolved
        # every group and parsed every option given (an unknown one is a usage error, exit 2).
        result = runner.invoke(app, [*argv, "--help"])
        assert result.exit_code == 0, f"dbops {' '.join(argv)}: {result.output}"
        path = " ".join(takewhile(lambda arg: not arg.startswith("-"), argv))
        assert f"Usage: dbops {path} " in result.output, result.output


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_units_verify(tmp_path: Path) -> None:
    dbops = Path(sys.executable).with_name("dbops")
    assert dbops.exists()
    for unit in SYSTEMD.iterdir():
        text = unit.read_text().replace("/opt/dbops/.venv/bin/dbops", str(dbops))
        (tmp_path / unit.name).write_text(text)
    units = sorted(str(p) for p in tmp_path.iterdir())
    result = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )
    # verify prints one line per problem; the only acceptable noise is about the missing user
    # and env file of the target machine.
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "/etc/dbops/dbops.env" not in line
    ]
    assert problems == [], problems
    timers = {p.stem for p in SYSTEMD.glob("*.timer")}
    assert timers == {p.stem for p in SYSTEMD.glob("*.service")}, "each service has its timer"


def _check_fields(value: Any, model: type, path: str) -> None:
    """Recursively check ``value`` against a kubernetes client model: no unknown fields."""
    attribute_map: dict[str, str] = model.attribute_map  # type: ignore[attr-defined]
    types: dict[str, str] = model.openapi_types  # type: ignore[attr-defined]
    by_json = {json: attr for attr, json in attribute_map.items()}
    assert isinstance(value, dict), f"{path}: expected an object"
    for key, item in value.items():
        assert key in by_json, f"{path}.{key}: not a field of {model.__name__}"
        _check_value(item, types[by_json[key]], f"{path}.{key}")


def _check_value(value: Any, type_name: str, path: str) -> None:
    import kubernetes.client.models as models

    if type_name.startswith("list["):
        assert isinstance(value, list), f"{path}: expected a list"
        for i, item in enumerate(value):
            _check_value(item, type_name[5:-1], f"{path}[{i}]")
    elif type_name.startswith("dict("):
        assert isinstance(value, dict), f"{path}: expected a mapping"
    elif hasattr(models, type_name):
        _check_fields(value, getattr(models, type_name), path)
    elif type_name == "str":
        assert isinstance(value, str), f"{path}: expected a string, got {value!r}"
    elif type_name == "int":
        assert not isinstance(value, bool), f"{path}: expected int"
        assert isinstance(value, int), f"{path}: expected int"
    elif type_name == "bool":
        assert isinstance(value, bool), f"{path}: expected a boolean"


def test_kubernetes_cronjobs_match_the_api() -> None:
    models = pytest.importorskip("kubernetes.client.models")
    docs = list(yaml.safe_load_all(KUBERNETES.read_text()))
    assert [d["kind"] for d in docs] == ["CronJob"] * len(docs)
    for doc in docs:
        _check_fields(doc, models.V1CronJob, doc["metadata"]["name"])
        spec = doc["spec"]
        assert spec["concurrencyPolicy"] == "Forbid", "two runs of a job must never overlap"
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        assert "DATABASE_URL" not in env, "the URL comes from a mounted secret file"
        assert env["DATABASE_URL_FILE"].startswith("/run/secrets/")
