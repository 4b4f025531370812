"""Multi-step routines as plain functions, above ops and services.

The CLI, the scheduler of ``dbops up --serve`` and the notebooks call them and only render.

- :mod:`dbops.workflows.drill`: the restore drill (restore, counts, the services' hot reads);
- :mod:`dbops.workflows.maintenance`: collect, plan, run with the settings' timeouts;
- :mod:`dbops.workflows.backup`: a backup, then the retention rules.
"""
