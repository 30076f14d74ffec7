"""Settings for a Celery worker (or beat) started as its own process by a
test: the hub's settings, on the test's database, with the overrides the test
made through pytest-django's `settings` fixture (passed as JSON)."""

import json
import os

from hubsite.settings import *  # noqa: F403
from hubsite.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["HUB_TEST_DB_NAME"]
for _name, _value in json.loads(os.environ.get("HUB_TEST_OVERRIDES", "{}")).items():
    globals()[_name] = _value
