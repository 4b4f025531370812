"""Actions that change the database or its files: what an operator runs.

Migrations (``migrate``), roles and grants (``roles``), demo data (``seed``), logical
backups with restore drills (``backup``), point-in-time recovery with pgBackRest (``pitr``),
maintenance (``maintain``), archiving of soft-deleted rows (``archive``), key rotation of
encrypted columns (``keys``) and the audit trail's verification (``audit``). Reading the
database's health is :mod:`dbops.monitoring`'s; the demo workload, which drives the
services, is :mod:`dbops.workload` (ops imports no service).
"""
