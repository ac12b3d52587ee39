"""The engine's semantic suite (tests/jobs/test_engine.py) on PostgreSQL + DBOS: the same test
functions, collected here again with this folder's ``make_engine`` (conftest.py)."""

from __future__ import annotations

from tests.jobs.test_engine import *  # noqa: F403
from tests.jobs.test_engine import test_runs_of_a_departed_task_wait_with_a_reason

# Kernel-defined tasks (register/unregister while running) are the embedded engine's: on
# PostgreSQL a process only dequeues the DBOS queues of the tasks it had at start.
del test_runs_of_a_departed_task_wait_with_a_reason
