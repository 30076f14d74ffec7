"""Fixtures of the scheduler's fault tests (tests/scheduler/processes.py)."""

from tests.scheduler.processes import own_redis, worker_processes  # noqa: F401
