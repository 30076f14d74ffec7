"""Who you are: users, groups, API tokens and the OAuth clients of servers."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils import timezone

from accounts import tokens
from accounts.validators import validate_username


class User(AbstractUser):
    """A hub user. `is_superuser` is JupyterHub's admin flag, so
    `createsuperuser` makes a hub admin; `is_approved` gates self sign-ups."""

    username = models.CharField(max_length=63, unique=True, validators=[validate_username])
    is_approved = models.BooleanField(
        default=True, help_text="Self sign-ups start unapproved and cannot log in until approved."
    )
    last_activity = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class SignIn(models.TextChoices):
        LOCAL = "local", "hub password"
        LDAP = "ldap", "LDAP"
        OIDC = "oidc", "OpenID Connect"
        GITHUB = "github", "GitHub"
        GOOGLE = "google", "Google"

    sign_in = models.CharField(
        max_length=16,
        choices=SignIn.choices,
        default=SignIn.LOCAL,
        help_text="How this user last signed in (set at every login).",
    )
    display_name = models.CharField(max_length=255, blank=True)
    # the groups the sign-in method reported last time: the ones it may take away
    external_groups = models.JSONField(default=list, blank=True)
    # JupyterHub's auth_state (upstream tokens), Fernet-encrypted with HUB_CRYPT_KEY
    encrypted_auth_state = models.TextField(blank=True, editable=False)
    # what the user's storage (local home directory, Kubernetes claim) was first
    # named after: kept when the user is renamed (KubeSpawner's remember_pvc_name),
    # so a rename keeps the files and a new user of the old name gets none of them
    storage_name = models.CharField(
        max_length=70,
        blank=True,
        editable=False,
        help_text="The name the user's home directory or volume claim was created under.",
    )

    objects = UserManager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["storage_name"],
                condition=~models.Q(storage_name=""),
                name="unique_storage_name",
            )
        ]

    @property
    def is_admin(self) -> bool:
        return self.is_superuser

    def note_activity(self, when: datetime) -> None:
        """Only ever move last_activity forward, in one UPDATE (no lost race)."""
        User.objects.filter(pk=self.pk).filter(
            models.Q(last_activity__isnull=True) | models.Q(last_activity__lt=when)
        ).update(last_activity=when)


class Group(models.Model):
    """A JupyterHub group: members and free-form properties that spawners read."""

    name = models.CharField(max_length=255, unique=True, validators=[validate_username])
    properties = models.JSONField(default=dict, blank=True)
    members = models.ManyToManyField(User, related_name="hub_groups", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiToken(models.Model):
    """An API token. Only a lookup prefix and a salted hash are stored.

    Owned by a user (personal tokens, a server's own token, OAuth access
    tokens) or by a named service (the router)."""

    class Kind(models.TextChoices):
        API = "api", "API token"
        SERVER = "server", "server token"
        OAUTH = "oauth", "OAuth access token"

    prefix = models.CharField(max_length=16, db_index=True)
    salt = models.CharField(max_length=32)
    hashed = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.API)
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens"
    )
    service = models.CharField(max_length=255, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    note = models.CharField(max_length=1023, blank=True)
    created = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_activity = models.DateTimeField(null=True, blank=True)
    session_id = models.CharField(max_length=64, blank=True, db_index=True)
    server = models.ForeignKey(
        "servers.Server",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="tokens",
        help_text="For server tokens: the server this token was issued to.",
    )
    oauth_client = models.ForeignKey(
        "accounts.OAuthClient",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="access_tokens",
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name = "API token"
        verbose_name_plural = "API tokens"

    def __str__(self) -> str:
        owner = self.user.username if self.user_id else f"service:{self.service}"
        return f"{owner} {self.prefix}… ({self.note or self.kind})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def matches(self, raw: str) -> bool:
        return tokens.matches(raw, self.salt, self.hashed)

    def set_secret(self, raw: str) -> None:
        self.prefix = tokens.lookup_prefix(raw)
        self.salt = tokens.new_salt()
        self.hashed = tokens.hash_token(raw, self.salt)

    @property
    def api_id(self) -> str:
        """JupyterHub's token ids are strings prefixed by kind ('a' for API tokens)."""
        return f"a{self.pk}"


class OAuthClient(models.Model):
    """A single-user server as an OAuth client of the hub (JupyterHub's contract:
    client_id `jupyterhub-user-<name>[-<server>]`, secret = the server's token)."""

    identifier = models.CharField(max_length=511, unique=True)
    description = models.CharField(max_length=1023, blank=True)
    secret_hash = models.CharField(max_length=64)
    secret_salt = models.CharField(max_length=32)
    redirect_uri = models.CharField(max_length=1023)
    allowed_scopes = models.JSONField(default=list)
    server = models.OneToOneField(
        "servers.Server",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="oauth_client",
    )

    def __str__(self) -> str:
        return self.identifier

    def set_secret(self, raw: str) -> None:
        self.secret_salt = tokens.new_salt()
        self.secret_hash = tokens.hash_token(raw, self.secret_salt)

    def secret_matches(self, raw: str) -> bool:
        return bool(self.secret_hash) and tokens.matches(raw, self.secret_salt, self.secret_hash)


class OAuthCode(models.Model):
    """A one-time authorization code; it expires after CODE_LIFETIME."""

    CODE_LIFETIME = timedelta(minutes=5)

    client = models.ForeignKey(OAuthClient, on_delete=models.CASCADE, related_name="codes")
    user = models.ForeignKey(User, on_delete=models.CASCADE)
    code_hash = models.CharField(max_length=64, unique=True)
    redirect_uri = models.CharField(max_length=1023)
    scopes = models.JSONField(default=list)
    code_challenge = models.CharField(max_length=128, blank=True)
    code_challenge_method = models.CharField(max_length=16, blank=True)
    session_id = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"code for {self.client} ({self.user})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()


class AuditEvent(models.Model):
    """One security-relevant action, kept apart from the rows it names (which
    may be deleted): actor and target are names, not foreign keys."""

    class Action(models.TextChoices):
        LOGIN = "login"
        LOGIN_FAILED = "login_failed"
        LOGOUT = "logout"
        TOKEN_CREATED = "token_created"
        TOKEN_REVOKED = "token_revoked"
        ADMIN_CHANGE = "admin_change"  # an add, change or delete in /hub/admin/
        ADMIN_ACTION = "admin_action"  # a bulk action in /hub/admin/
        SERVER_ACCESS = "server_access"  # someone opened another user's server

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    actor = models.CharField(max_length=255, blank=True)
    target = models.CharField(max_length=255, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.action} {self.actor} {self.target}".strip()
