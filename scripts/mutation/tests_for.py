"""Run the tests that should notice the mutant cosmic-ray applied to the working tree.

cosmic-ray runs one test command for a whole session; the sampled session spans many modules,
each with its own tests, so this command asks git which module is mutated and runs that
module's tests (stopping at the first failure: a killed mutant). Run it in a clone only.

With ``DBOPS_MUTATION_COVERAGE`` naming a map built by ``coverage_map.py`` (which test
executes which line, from one run of the whole suite under coverage), a mutant the module's
own tests miss then meets every other test that executes its line, the way mutmut picks
tests: a mutant only a test elsewhere in the suite catches is killed by the suite, and the
hand-written map alone would count it a survivor. That second run has a time budget; past
it the mutant counts as a survivor (never as killed), so a slow run cannot inflate the score.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

#: Module -> the tests that exercise it (each runs against its own private cluster).
TESTS: dict[str, tuple[str, ...]] = {
    "dbops/monitoring/advice.py": (
        "tests/monitoring/test_advice_parse.py",
        "tests/monitoring/test_advice.py",
    ),
    "dbops/monitoring/history/_common.py": ("tests/monitoring/test_history.py",),
    "dbops/monitoring/history/capturing.py": ("tests/monitoring/test_history.py",),
    "dbops/monitoring/history/retention.py": ("tests/monitoring/test_history.py",),
    "dbops/monitoring/history/series.py": ("tests/monitoring/test_history.py",),
    "dbops/monitoring/explain.py": (
        "tests/monitoring/test_explain.py",
        "tests/cli/test_monitor.py::test_explain_of_hostile_text_is_one_line_not_a_crash",
    ),
    "dbops/monitoring/status.py": ("tests/monitoring/test_status.py",),
    "dbops/monitoring/snapshot/_base.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/access.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/activity.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/advice.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/app.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/backups.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/codec.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/data.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/database.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/history.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/indexes.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/model.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/resources.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/statements.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/snapshot/tables.py": (
        "tests/monitoring/test_snapshot.py",
        "tests/monitoring/test_checks.py",
    ),
    "dbops/monitoring/collect.py": (
        "tests/monitoring/test_collect.py",
        "tests/monitoring/collectors/test_database.py",
        "tests/monitoring/test_monitor_role.py",
        # Default arguments run at import, under no test's context: the coverage map cannot
        # pick the tests of ``app=False`` by itself.
        "tests/exporter/families/test_app.py::"
        "test_collect_snapshot_in_the_app_process_includes_the_app_section",
    ),
    "dbops/monitoring/_fetch.py": ("tests/monitoring/test_collect.py",),
    "dbops/monitoring/collectors/access.py": ("tests/monitoring/collectors/test_access.py",),
    "dbops/monitoring/collectors/activity.py": ("tests/monitoring/collectors/test_activity.py",),
    "dbops/monitoring/collectors/backups.py": ("tests/monitoring/collectors/test_backups.py",),
    "dbops/monitoring/collectors/data.py": (
        "tests/monitoring/collectors/test_data.py",
        "tests/monitoring/test_monitor_role.py",
    ),
    "dbops/monitoring/collectors/database.py": ("tests/monitoring/collectors/test_database.py",),
    "dbops/monitoring/collectors/indexes.py": ("tests/monitoring/collectors/test_indexes.py",),
    "dbops/monitoring/collectors/pool.py": ("tests/monitoring/collectors/test_pool.py",),
    "dbops/monitoring/collectors/resources.py": ("tests/monitoring/collectors/test_resources.py",),
    "dbops/monitoring/collectors/statements.py": (
        "tests/monitoring/collectors/test_statements.py",
    ),
    "dbops/monitoring/collectors/tables.py": ("tests/monitoring/collectors/test_tables.py",),
    "dbops/ops/audit.py": ("tests/ops/backup/test_common.py", "tests/ops/test_audit.py"),
    "dbops/ops/archive/moving.py": ("tests/ops/test_archive.py",),
    "dbops/ops/archive/restoring.py": ("tests/ops/test_archive.py",),
    "dbops/ops/roles/setup.py": (
        "tests/ops/test_role_secrets.py",
        "tests/cli/test_roles.py",
        "tests/services/test_rls_hardening.py",
        "tests/monitoring/test_monitor_role.py",
    ),
    "dbops/ops/roles/grants.py": (
        "tests/ops/test_role_secrets.py",
        "tests/cli/test_roles.py",
        "tests/services/test_rls_hardening.py",
        "tests/monitoring/test_monitor_role.py",
    ),
    "dbops/ops/roles/secrets.py": (
        "tests/ops/test_role_secrets.py",
        "tests/cli/test_roles.py",
        "tests/services/test_rls_hardening.py",
        "tests/monitoring/test_monitor_role.py",
    ),
    "dbops/ops/roles/status.py": (
        "tests/ops/test_role_secrets.py",
        "tests/cli/test_roles.py",
        "tests/services/test_rls_hardening.py",
        "tests/monitoring/test_monitor_role.py",
    ),
    "dbops/ops/maintenance.py": ("tests/ops/test_maintenance.py",),
    "dbops/core/maintenance.py": (
        "tests/ops/test_maintenance.py",
        "tests/monitoring/test_maintenance.py",
    ),
    "dbops/core/audit_head.py": ("tests/ops/test_audit.py",),
    "dbops/core/ownership.py": ("tests/services/test_users.py", "tests/ops/test_archive.py"),
    "dbops/ops/keys.py": ("tests/ops/test_keys.py",),
    "dbops/ops/migrate.py": ("tests/ops/test_migrate.py",),
    "dbops/workload.py": (
        "tests/test_workload.py",
        "tests/test_docs.py::test_readme_states_the_workload_mix_the_code_runs",
    ),
    "dbops/ops/_bulk.py": ("tests/ops/test_bulk.py",),
    "dbops/ops/backup/_common.py": (
        "tests/ops/backup/test_common.py",
        "tests/ops/backup/test_manifest_prune.py",
        "tests/ops/backup/test_backup.py",
    ),
    "dbops/ops/backup/create.py": ("tests/ops/backup/test_backup.py",),
    "dbops/ops/backup/verify.py": ("tests/ops/backup/test_backup.py",),
    "dbops/ops/backup/restore.py": (
        "tests/ops/backup/test_common.py",
        "tests/ops/backup/test_backup.py",
    ),
    "dbops/core/manifest.py": (
        "tests/ops/backup/test_manifest_prune.py",
        "tests/ops/backup/test_backup.py",
    ),
    "dbops/ops/seed/__init__.py": (
        "tests/ops/seed",
        "tests/ops/test_audit.py::test_the_seed_records_one_bulk_summary_per_table_not_one_record_per_row",
    ),
    "dbops/ops/seed/_plan.py": ("tests/ops/seed",),
    "dbops/ops/seed/_rows.py": ("tests/ops/seed",),
    "dbops/ops/pitr/_layout.py": ("tests/ops/test_pitr_info.py", "tests/ops/test_pitr.py"),
    "dbops/ops/pitr/backups.py": ("tests/ops/test_pitr_info.py", "tests/ops/test_pitr.py"),
    "dbops/ops/pitr/configure.py": ("tests/ops/test_pitr_info.py", "tests/ops/test_pitr.py"),
    "dbops/ops/pitr/restoring.py": ("tests/ops/test_pitr_info.py", "tests/ops/test_pitr.py"),
    "dbops/ops/pitr/results.py": ("tests/ops/test_pitr_info.py", "tests/ops/test_pitr.py"),
}

PYTEST = (sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider")

#: Seconds the covering tests may take (cosmic-ray's own timeout is 300 s a mutant, and a
#: timeout there counts as killed): past this budget the mutant is reported as a survivor.
COVERING_BUDGET = 200.0

#: pytest's exit status when every selected test passed.
PASSED = 0


def changed_lines(module: str) -> set[int]:
    """The original file's line numbers the mutant touches (from ``git diff -U0``)."""
    diff = subprocess.run(
        ("git", "diff", "-U0", "--", module), check=True, capture_output=True, text=True
    ).stdout
    lines: set[int] = set()
    for start, count in re.findall(r"^@@ -(\d+)(?:,(\d+))? ", diff, flags=re.MULTILINE):
        first, n = int(start), int(count) if count else 1
        lines.update(range(first, first + max(n, 1)))
    return lines


def covering_tests(module: str, mapped: tuple[str, ...]) -> list[str]:
    """Tests outside ``mapped`` that execute a changed line, per the coverage map (if any)."""
    path = os.environ.get("DBOPS_MUTATION_COVERAGE")
    if not path:
        return []
    with open(path, encoding="utf-8") as f:
        by_line: dict[str, list[str]] = json.load(f).get(module, {})
    tests = {t for line in changed_lines(module) for t in by_line.get(str(line), [])}
    return sorted(t for t in tests if not any(t.startswith(m) for m in mapped))


def main() -> int:
    """Run the mutated module's tests; 0 = the mutant survived, anything else = killed."""
    changed = subprocess.run(
        ("git", "diff", "--name-only"), check=True, capture_output=True, text=True
    ).stdout.split()
    modules = [path for path in changed if path.startswith("dbops/")]
    if len(modules) != 1 or modules[0] not in TESTS:
        print(f"tests_for: expected one mapped module changed, got {modules}", file=sys.stderr)
        return 2  # counted as killed: look at the report if this ever shows up
    mapped = TESTS[modules[0]]
    status = subprocess.run((*PYTEST, *mapped), check=False).returncode
    others = covering_tests(modules[0], mapped) if status == PASSED else []
    if not others:
        return status
    print(f"tests_for: the module's tests passed; {len(others)} covering tests next")
    try:
        status = subprocess.run((*PYTEST, *others), check=False, timeout=COVERING_BUDGET).returncode
    except subprocess.TimeoutExpired:
        print("tests_for: covering tests over budget; counted as a survivor")
        return PASSED
    if status != PASSED:
        print("tests_for: KILLED BY A COVERING TEST outside the module's map")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
