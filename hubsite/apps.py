from django.apps import AppConfig


class HubsiteConfig(AppConfig):
    """Only here to register the settings checks (hubsite/checks.py)."""

    name = "hubsite"

    def ready(self) -> None:
        from hubsite import checks  # noqa: F401  (registers the checks)
