"""Changes to servers, by noun. Every state transition is a compare-and-set
UPDATE, so a Celery task that runs twice (acks_late + redelivery) finds the row
already moved and does nothing.

- profiles.py: which profiles a user may start, and which one a start uses
- claims.py: the state claims people and scripts make (request_start,
  request_stop, mark_running, mark_failed) and the queue they hand work to
- records.py: creating, renaming and removing server rows
- launch.py: the work a worker does (start_on_spawner, stop_on_spawner,
  build_spec) and the server's credentials
- leases.py: which worker owns a start, renewed while it runs
- reconcile.py: repairing what a dead worker or a dead process left behind
  (the plan is scheduler/reconcile.py's)
- culls.py: the idle culler's pass (the policy is scheduler/culling.py's)
- activity.py: last_activity reported by servers

Callers import this package (`from servers import services`); the names below
are its public surface."""

from servers.services.activity import UnknownServer, record_activity
from servers.services.claims import (
    SPAWN_TASK,
    STOP_TASK,
    mark_failed,
    mark_running,
    named_server_allowed,
    request_start,
    request_stop,
    requeue_start,
)
from servers.services.credentials import issue_credentials, revoke_credentials
from servers.services.culls import CullReport, cull_idle, cull_policy
from servers.services.errors import ServerExists, StartRefused
from servers.services.launch import (
    build_spec,
    delete_user,
    note_progress,
    start_on_spawner,
    stop_leftovers,
    stop_now,
    stop_on_spawner,
)
from servers.services.profiles import allowed_profiles, import_profiles, pick_profile
from servers.services.reconcile import check_alive, reconcile_servers
from servers.services.records import (
    check_server_name,
    create_named_server,
    delete_server,
    get_or_create_server,
    modify_server,
    remove_if_stopped,
    remove_when_stopped,
    set_display_name,
    start_server,
    stop_or_remove,
)
from servers.services.stopping import pending as pending_stops

__all__ = [
    "SPAWN_TASK",
    "STOP_TASK",
    "CullReport",
    "ServerExists",
    "StartRefused",
    "UnknownServer",
    "allowed_profiles",
    "build_spec",
    "check_alive",
    "check_server_name",
    "create_named_server",
    "cull_idle",
    "cull_policy",
    "delete_server",
    "delete_user",
    "get_or_create_server",
    "import_profiles",
    "issue_credentials",
    "mark_failed",
    "mark_running",
    "modify_server",
    "named_server_allowed",
    "note_progress",
    "pending_stops",
    "pick_profile",
    "reconcile_servers",
    "record_activity",
    "remove_if_stopped",
    "remove_when_stopped",
    "request_start",
    "request_stop",
    "requeue_start",
    "revoke_credentials",
    "set_display_name",
    "start_on_spawner",
    "start_server",
    "stop_leftovers",
    "stop_now",
    "stop_on_spawner",
    "stop_or_remove",
]
