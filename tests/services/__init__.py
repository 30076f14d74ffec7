"""Real servers the sign-in tests start (slapd, an OpenID Connect provider) and
labelled stand-ins for public services that cannot run here."""
