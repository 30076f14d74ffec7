"""Sign-in settings built from HUB_* variables: the django-auth-ldap
(AUTH_LDAP_*) and allauth names are filled here, so every method is
configured from the environment alone. Read once, by hubsite/settings.py; a
value that cannot work stops the hub at start with the variable's name."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from hubsite.env import env_bool, env_choice, env_list, env_secret, env_str

LDAP_BACKEND = "accounts.backends.HubLDAPBackend"
GROUP_TYPES = {
    "groupOfNames": ("GroupOfNamesType", "(objectClass=groupOfNames)"),
    "groupOfUniqueNames": ("GroupOfUniqueNamesType", "(objectClass=groupOfUniqueNames)"),
    "posixGroup": ("PosixGroupType", "(objectClass=posixGroup)"),
    "activeDirectory": ("NestedActiveDirectoryGroupType", "(objectClass=group)"),
}


def dn_list(name: str) -> list[str]:
    """Distinguished names contain commas, so lists of them are `;`-separated."""
    return [dn.strip() for dn in os.environ.get(name, "").split(";") if dn.strip()]


def allow_list(name: str, *, dns: bool = False) -> list[str] | None:
    """None when unset (no allow-list). Set but empty stops the hub: it would
    let nobody in, which is never what was meant (fail closed, loudly)."""
    if name not in os.environ:
        return None
    values = dn_list(name) if dns else env_list(name)
    if not values:
        raise ImproperlyConfigured(f"{name} is set but empty: nobody could sign in; unset it")
    return values


def check_auth_state(enabled: bool, crypt_key: str) -> None:
    """auth_state without a valid key cannot be kept: stop at start, not at a login."""
    if not enabled:
        return
    if not crypt_key:
        raise ImproperlyConfigured(
            "HUB_AUTH_STATE=true needs HUB_CRYPT_KEY (or _FILE): a Fernet key, "
            "e.g. python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())'"
        )
    from cryptography.fernet import Fernet

    for key in filter(None, (k.strip() for k in crypt_key.split(";"))):
        try:
            Fernet(key.encode())
        except ValueError:
            raise ImproperlyConfigured(
                "HUB_CRYPT_KEY: each key must be 32 url-safe base64-encoded bytes"
            ) from None


def username_template(name: str, value: str) -> str:
    """`{username}` (LDAPAuthenticator's spelling) -> django-auth-ldap's `%(user)s`."""
    if value.count("{username}") != 1:
        raise ImproperlyConfigured(f"{name} must contain {{username}} once (got {value!r})")
    return value.replace("%", "%%").replace("{username}", "%(user)s")


def ldap_settings() -> dict[str, object]:
    """AUTH_LDAP_* for django-auth-ldap; {} when HUB_LDAP_URI is unset."""
    uri = env_str("HUB_LDAP_URI")
    if not uri:
        return {}
    import ldap
    from django_auth_ldap import config

    if not uri.startswith(("ldap://", "ldaps://")):
        raise ImproperlyConfigured(f"HUB_LDAP_URI must start with ldap:// or ldaps:// ({uri!r})")
    template = env_str("HUB_LDAP_USER_DN_TEMPLATE")
    search_base = env_str("HUB_LDAP_USER_SEARCH_BASE")
    if bool(template) == bool(search_base):
        raise ImproperlyConfigured(
            "with HUB_LDAP_URI set exactly one of HUB_LDAP_USER_DN_TEMPLATE (bind as "
            "uid={username},ou=people,...) or HUB_LDAP_USER_SEARCH_BASE (search, then bind)"
        )
    bind_dn = env_str("HUB_LDAP_BIND_DN")
    out: dict[str, object] = {
        "AUTH_LDAP_SERVER_URI": uri,
        "AUTH_LDAP_START_TLS": env_bool("HUB_LDAP_START_TLS", False),
        "AUTH_LDAP_BIND_DN": bind_dn,
        "AUTH_LDAP_BIND_PASSWORD": env_secret("HUB_LDAP_BIND_PASSWORD"),
        # without a service account, the user's own bind reads their groups
        "AUTH_LDAP_BIND_AS_AUTHENTICATING_USER": not bind_dn,
        "AUTH_LDAP_USER_ATTR_MAP": {
            "email": env_str("HUB_LDAP_EMAIL_ATTRIBUTE", "mail"),
            "display_name": env_str("HUB_LDAP_DISPLAY_NAME_ATTRIBUTE", "displayName"),
        },
        "AUTH_LDAP_CONNECTION_OPTIONS": _tls_options(ldap),
    }
    if template:
        out["AUTH_LDAP_USER_DN_TEMPLATE"] = username_template("HUB_LDAP_USER_DN_TEMPLATE", template)
    else:
        user_filter = env_str("HUB_LDAP_USER_FILTER", "(uid={username})")
        out["AUTH_LDAP_USER_SEARCH"] = config.LDAPSearch(
            search_base, ldap.SCOPE_SUBTREE, username_template("HUB_LDAP_USER_FILTER", user_filter)
        )
    out.update(_group_settings(ldap, config))
    return out


def _tls_options(ldap) -> dict[int, object]:
    options: dict[int, object] = {ldap.OPT_NETWORK_TIMEOUT: 10, ldap.OPT_REFERRALS: 0}
    ca_file = env_str("HUB_LDAP_CA_FILE")
    if ca_file:
        if not os.path.isfile(ca_file):
            raise ImproperlyConfigured(f"HUB_LDAP_CA_FILE: no such file {ca_file}")
        options[ldap.OPT_X_TLS_CACERTFILE] = ca_file
    options[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
    options[ldap.OPT_X_TLS_NEWCTX] = 0  # last: applies the TLS options above
    return options


def _group_settings(ldap, config) -> dict[str, object]:
    base = env_str("HUB_LDAP_GROUP_SEARCH_BASE")
    allowed = allow_list("HUB_LDAP_ALLOWED_GROUPS", dns=True)
    admins = dn_list("HUB_LDAP_ADMIN_GROUPS")
    if not base:
        if allowed or admins:
            raise ImproperlyConfigured(
                "HUB_LDAP_ALLOWED_GROUPS/HUB_LDAP_ADMIN_GROUPS need HUB_LDAP_GROUP_SEARCH_BASE"
            )
        return {}
    kind = env_choice("HUB_LDAP_GROUP_TYPE", "groupOfNames", tuple(GROUP_TYPES))
    type_name, default_filter = GROUP_TYPES[kind]
    out: dict[str, object] = {
        "AUTH_LDAP_GROUP_SEARCH": config.LDAPSearch(
            base, ldap.SCOPE_SUBTREE, env_str("HUB_LDAP_GROUP_FILTER", default_filter)
        ),
        "AUTH_LDAP_GROUP_TYPE": getattr(config, type_name)(name_attr="cn"),
    }
    if allowed:
        query = config.LDAPGroupQuery(allowed[0])
        for dn in allowed[1:]:
            query |= config.LDAPGroupQuery(dn)
        out["AUTH_LDAP_REQUIRE_GROUP"] = query
    if admins:
        # set at every login, so leaving the group takes the flag away
        out["AUTH_LDAP_USER_FLAGS_BY_GROUP"] = {"is_superuser": admins, "is_staff": admins}
    return out


# --- OpenID Connect, Google (an OpenID Connect provider), GitHub ---------------

GOOGLE_ISSUER = "https://accounts.google.com"


def _required(name: str, why: str) -> str:
    value = env_secret(name) if name.endswith("SECRET") else env_str(name)
    if not value:
        raise ImproperlyConfigured(f"{name} is required {why}")
    return value


def _oidc_app(prefix: str, provider_id: str, issuer: str, name: str) -> dict[str, object]:
    scopes = env_str(f"{prefix}_SCOPES").replace(",", " ").split() or ["openid", "profile", "email"]
    if "openid" not in scopes:
        # without it there is no ID token, so no nonce to bind the sign-in to
        raise ImproperlyConfigured(f"{prefix}_SCOPES must include openid (got {scopes!r})")
    return {
        "provider_id": provider_id,
        "name": env_str(f"{prefix}_DISPLAY_NAME", name),
        "client_id": _required(f"{prefix}_CLIENT_ID", f"with {prefix}_ISSUER"),
        "secret": _required(f"{prefix}_CLIENT_SECRET", f"with {prefix}_CLIENT_ID"),
        "settings": {
            "server_url": issuer.rstrip("/"),
            "scope": scopes,
            "oauth_pkce_enabled": True,
        },
    }


def social_providers() -> dict[str, dict[str, object]]:
    """The hub's view of each configured provider, keyed by provider id
    (`oidc`, `google`): which claims name the user and their groups, and
    which groups are allowed in or made admin. {} when none is configured."""
    providers: dict[str, dict[str, object]] = {}
    if env_str("HUB_OIDC_ISSUER"):
        providers["oidc"] = {
            "app": _oidc_app("HUB_OIDC", "oidc", env_str("HUB_OIDC_ISSUER"), "OpenID Connect"),
            "username_claim": env_str("HUB_OIDC_USERNAME_CLAIM", "preferred_username"),
            "groups_claim": env_str("HUB_OIDC_GROUPS_CLAIM"),
            "allowed_groups": allow_list("HUB_OIDC_ALLOWED_GROUPS"),
            "admin_groups": env_list("HUB_OIDC_ADMIN_GROUPS"),
            "allow_all": env_bool("HUB_OIDC_ALLOW_ALL", False),
            "hosted_domains": None,
        }
        if (providers["oidc"]["allowed_groups"] or providers["oidc"]["admin_groups"]) and not (
            providers["oidc"]["groups_claim"]
        ):
            raise ImproperlyConfigured(
                "HUB_OIDC_ALLOWED_GROUPS/HUB_OIDC_ADMIN_GROUPS need HUB_OIDC_GROUPS_CLAIM"
            )
    if env_str("HUB_GOOGLE_CLIENT_ID"):
        issuer = env_str("HUB_GOOGLE_ISSUER", GOOGLE_ISSUER)
        providers["google"] = {
            "app": _oidc_app("HUB_GOOGLE", "google", issuer, "Google"),
            "username_claim": env_str("HUB_GOOGLE_USERNAME_CLAIM", "email"),
            "groups_claim": "",
            "allowed_groups": None,
            "admin_groups": [],
            "allow_all": env_bool("HUB_GOOGLE_ALLOW_ALL", False),
            "hosted_domains": allow_list("HUB_GOOGLE_HOSTED_DOMAINS"),
        }
        domains = providers["google"]["hosted_domains"]
        if domains and len(domains) == 1:
            # Google shows only that domain's accounts (the claim is still checked)
            providers["google"]["app"]["settings"]["auth_params"] = {"hd": domains[0]}
    github = github_provider()
    if github:
        providers["github"] = github
    return providers


# allauth's openid_connect provider sends no nonce; ours does (accounts/oidc.py)
OIDC_PROVIDER_CLASS = "accounts.oidc.NonceOpenIDConnectProvider"


def socialaccount_settings(providers: dict[str, dict[str, object]]) -> dict[str, object]:
    """allauth's SOCIALACCOUNT_PROVIDERS: apps from settings, none in the database.
    The provider class is named even with no OpenID Connect app: allauth reads
    it once, when its provider registry first loads, whatever is configured then."""
    apps = [p["app"] for key, p in providers.items() if key != "github"]
    openid_connect: dict[str, object] = {"provider_class": OIDC_PROVIDER_CLASS}
    if apps:
        openid_connect["APPS"] = apps
    out: dict[str, object] = {"openid_connect": openid_connect}
    if "github" in providers:
        out["github"] = {
            "APPS": [providers["github"]["app"]],
            "SCOPE": ["read:user", "user:email", "read:org"],
        }
    return out


GITHUB_URL = "https://github.com"


def github_provider() -> dict[str, object] | None:
    """GitHub (or GitHub Enterprise at HUB_GITHUB_URL), with OAuthenticator's
    allowed organisations: `org` or `org:team`."""
    if not env_str("HUB_GITHUB_CLIENT_ID"):
        return None
    allowed = allow_list("HUB_GITHUB_ALLOWED_ORGANIZATIONS")
    return {
        "app": {
            "client_id": env_str("HUB_GITHUB_CLIENT_ID"),
            "secret": _required("HUB_GITHUB_CLIENT_SECRET", "with HUB_GITHUB_CLIENT_ID"),
            "name": "GitHub",
        },
        "url": env_str("HUB_GITHUB_URL", GITHUB_URL).rstrip("/"),
        "username_claim": "login",
        # organisations and org:team pairs, fetched at login (accounts/github.py)
        "groups_claim": "hub_groups",
        "allowed_groups": allowed,
        "admin_groups": env_list("HUB_GITHUB_ADMIN_ORGANIZATIONS"),
        "allow_all": env_bool("HUB_GITHUB_ALLOW_ALL", False),
        "hosted_domains": None,
    }


def mail_settings() -> dict[str, object]:
    """Django's EMAIL_* from HUB_SMTP_*; with mail, sign-up asks for an address
    and verifies it before the first login (allauth). Without, mail goes to the
    log (console) and nothing depends on it."""
    host = env_str("HUB_SMTP_HOST")
    if not host:
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    from hubsite.env import env_int

    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": host,
        "EMAIL_PORT": env_int("HUB_SMTP_PORT", 587, minimum=1),
        "EMAIL_HOST_USER": env_str("HUB_SMTP_USER"),
        "EMAIL_HOST_PASSWORD": env_secret("HUB_SMTP_PASSWORD"),
        "EMAIL_USE_TLS": env_bool("HUB_SMTP_STARTTLS", True),
        "EMAIL_TIMEOUT": 20,
        "DEFAULT_FROM_EMAIL": env_str("HUB_EMAIL_FROM", f"hub@{host}"),
        "ACCOUNT_SIGNUP_FIELDS": ["username*", "email*", "password1*", "password2*"],
        "ACCOUNT_EMAIL_VERIFICATION": "mandatory",
    }


def sign_up_open(external_sign_in: bool) -> bool:
    """HUB_SIGNUP_OPEN, defaulting to closed when LDAP or a provider is
    configured: a hub password made first on a directory name would squat it."""
    return env_bool("HUB_SIGNUP_OPEN", not external_sign_in)
