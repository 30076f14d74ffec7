"""The router daemon: a lean mitmproxy master that sends /user/<name>/... to
user servers and everything else to the hub. It only speaks HTTP and JSON to
the hub and must never import Django (it runs as its own replicas)."""
