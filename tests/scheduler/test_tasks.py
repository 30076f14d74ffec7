"""The tasks module and the servers services it calls: the services send tasks
by name, so they never import scheduler.tasks (no import circle), and those
names are the ones the tasks register under."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from servers import services

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_task_names_the_services_send_are_registered_by_scheduler_tasks():
    from hubsite.celery import app
    from scheduler import tasks

    assert tasks.spawn_server.name == services.SPAWN_TASK
    assert tasks.stop_server.name == services.STOP_TASK
    assert {services.SPAWN_TASK, services.STOP_TASK} <= set(app.tasks)


def test_importing_the_servers_services_does_not_import_the_tasks():
    code = (
        "import django; django.setup(); import sys; import servers.services;"
        "print('scheduler.tasks' in sys.modules)"
    )
    env = {"DJANGO_SETTINGS_MODULE": "hubsite.settings", "PATH": "/usr/bin:/bin"}
    env["HUB_DATA_DIR"] = str(ROOT / ".test-data")
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
