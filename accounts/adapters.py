"""django-allauth adapters: who may sign up and sign in, whatever the method.

allauth's `pre_login` hook is the single point every login passes through
(hub passwords, LDAP through the same form, OpenID Connect/Google/GitHub, the
login that follows a sign-up). There the sign-in is recorded (method, groups,
admin, auth_state: accounts.signin), the policy applied (accounts.policy) and
unapproved users stopped, so a refused person gets no session. Failed logins
are counted per real client address and per account (client_address).
Logout's OAuth-token revocation lives in accounts.signals (user_logged_out)."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts import oidc, policy, services, signin
from accounts.claims import ProviderVerdict, decide_provider, merged_claims
from accounts.client_address import client_address
from accounts.models import User
from accounts.validators import normalize_username


class HubAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return settings.HUB_SIGNUP_OPEN

    def get_client_ip(self, request: HttpRequest) -> str:
        # the address allauth's rate limits count: the real client's, not the router's
        return client_address(request)

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # allauth keys an account's failures by "<Host header>:<login>"; with any
        # Host accepted, a new Host would be a fresh set of tries on the same
        # account, and two hub replicas reached on different addresses would not
        # share a lockout. The account alone is the key, as the hub names it.
        login = credentials.get("email", credentials.get("username", ""))
        return "login:" + str(login).strip().lower()

    def clean_username(self, username: str, shallow: bool = False) -> str:
        # JupyterHub normalizes names to lowercase; so do we, before validation
        username = super().clean_username(normalize_username(username), shallow=shallow)
        # a sign-up the policy would refuse at login is refused now, account-less
        verdict = policy.decide(username, (), is_admin=False, policy=policy.configured_policy())
        if not verdict.allowed and not policy.configured_policy().allowed_groups:
            raise ValidationError("This name is not allowed to sign up on this hub.")
        return username

    def save_user(self, request: HttpRequest, user, form, commit: bool = True):
        user.is_approved = not settings.HUB_SIGNUP_REQUIRES_APPROVAL
        return super().save_user(request, user, form, commit=commit)

    def pre_login(self, request: HttpRequest, user, **kwargs: Any) -> HttpResponse | None:
        refused = super().pre_login(request, user, **kwargs)
        if refused is not None:
            return refused
        sociallogin = (kwargs.get("signal_kwargs") or {}).get("sociallogin")
        if sociallogin is not None:
            record_social_sign_in(user, sociallogin)
        groups = [g.name for g in user.hub_groups.all()]
        verdict = policy.decide(
            user.username, groups, is_admin=user.is_superuser, policy=policy.configured_policy()
        )
        if not verdict.allowed:
            # no half-login stays behind (allauth's stashed login, authentication
            # records): the visitor is anonymous, so the whole session can go
            request.session.flush()
            signin.stop_servers_if_refused(user)
            context = {"username": user.get_username()}
            return render(request, "account/not_allowed.html", context, status=403)
        if verdict.make_admin and not (user.is_superuser and user.is_approved):
            # named by the operator (HUB_ADMIN_USERS): admin, and nothing to approve
            services.set_admin(user, True)
            services.approve_users([user])
            user.is_approved = True
        if getattr(user, "is_approved", True):
            return None
        # as above: no half-login stays behind
        request.session.flush()
        signup = bool(kwargs.get("signup"))
        context = {"username": user.get_username(), "just_signed_up": signup}
        # a fresh sign-up succeeded (200); a login attempt was refused (403)
        return render(
            request, "account/awaiting_approval.html", context, status=200 if signup else 403
        )


def provider_verdict(sociallogin) -> ProviderVerdict:
    config = settings.HUB_SOCIAL_PROVIDERS[sociallogin.account.provider]
    return decide_provider(merged_claims(sociallogin.account.extra_data), config)


def upstream_state(sociallogin) -> dict[str, Any]:
    """JupyterHub's auth_state for OAuthenticator logins."""
    token = sociallogin.token
    return {
        "access_token": token.token if token else "",
        "refresh_token": token.token_secret if token else "",
        "expires_at": token.expires_at.isoformat() if token and token.expires_at else None,
        "oauth_user": merged_claims(sociallogin.account.extra_data),
    }


class HubSocialAccountAdapter(DefaultSocialAccountAdapter):
    """OpenID Connect, Google and GitHub logins: the provider's rules first (claims ->
    username, allowed, groups, admin), then the same pre_login as everyone."""

    def pre_social_login(self, request: HttpRequest, sociallogin) -> None:
        # before the claims are believed: they must come from this sign-in's ID token
        oidc.refuse_unbound_id_token(request, sociallogin)
        verdict = provider_verdict(sociallogin)
        admitted = verdict.allowed or (
            verdict.extra.get("soft")
            and policy.decide(
                verdict.username, (), is_admin=False, policy=policy.configured_policy()
            ).allowed
            and policy.configured_policy().has_allow_list
        )
        if not admitted:
            context = {"username": verdict.username or "?", "reason": verdict.reason}
            raise ImmediateHttpResponse(
                render(request, "account/not_allowed.html", context, status=403)
            )
        if not sociallogin.is_existing:
            # the provider's name for the person is the hub's: the same user
            # (never matched by e-mail address, verified or not)
            user = User.objects.filter(username=verdict.username).first()
            if user is not None:
                sociallogin.connect(request, user)
                return
            self._keep_only_own_addresses(sociallogin)

    @staticmethod
    def _keep_only_own_addresses(sociallogin) -> None:
        """An address the provider has not verified, or that another user has,
        is not kept: it would be a claim on someone else's account."""
        taken = set(User.objects.exclude(email="").values_list("email", flat=True))
        kept = [a for a in sociallogin.email_addresses if a.verified and a.email not in taken]
        sociallogin.email_addresses = kept
        if sociallogin.user.email not in {a.email for a in kept}:
            sociallogin.user.email = ""

    def is_open_for_signup(self, request: HttpRequest, sociallogin) -> bool:
        # the provider's allow rules decide (pre_social_login), not HUB_SIGNUP_OPEN
        return True

    def save_user(self, request: HttpRequest, sociallogin, form=None):
        expected = provider_verdict(sociallogin).username
        if sociallogin.user.username != expected:
            # allauth blanks a name it will not take and makes one up: never
            raise ImmediateHttpResponse(
                render(request, "account/not_allowed.html", {"username": expected}, status=403)
            )
        return super().save_user(request, sociallogin, form=form)

    def populate_user(self, request: HttpRequest, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        claims = merged_claims(sociallogin.account.extra_data)
        user.username = provider_verdict(sociallogin).username
        user.display_name = str(claims.get("name") or "")[:255]
        return user

    def is_auto_signup_allowed(self, request: HttpRequest, sociallogin) -> bool:
        return True


def record_social_sign_in(user, sociallogin) -> None:
    verdict = provider_verdict(sociallogin)
    signin.record_sign_in(
        user,
        method=User.SignIn(sociallogin.account.provider),
        groups=verdict.groups,
        admin=verdict.admin,
        state=upstream_state(sociallogin),
    )
