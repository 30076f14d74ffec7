"""The hub as an ASGI application: what the stream server (hubsite.streams)
serves. Every view works here, but the router sends only progress streams this
way; the rest of the hub stays on gunicorn's threads (hubsite.wsgi)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings")
application = get_asgi_application()
