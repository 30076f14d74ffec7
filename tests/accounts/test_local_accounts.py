"""Local accounts: the optional TOTP second factor (allauth MFA), password
change and reset."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
import time

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core import mail
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def totp_code(secret: str, at: float | None = None) -> str:
    """RFC 6238 (SHA-1, 30 s, 6 digits), computed here, not by allauth."""
    counter = int((time.time() if at is None else at) // 30)
    key = base64.b32decode(secret, casefold=True)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def alice_with_totp(alice):
    secret = generate_totp_secret()
    TOTP.activate(alice, secret)
    return secret


def test_a_password_alone_does_not_sign_in_a_user_with_totp(fresh_limits, alice_with_totp):
    client = Client()
    response = client.post("/hub/login", {"login": "alice", "password": PASSWORD})
    assert response["Location"] == "/hub/accounts/2fa/authenticate/"
    assert not logged_in(client)


def test_a_wrong_code_is_refused(fresh_limits, alice_with_totp):
    client = Client()
    client.post("/hub/login", {"login": "alice", "password": PASSWORD})
    wrong = f"{(int(totp_code(alice_with_totp)) + 1) % 1_000_000:06d}"
    client.post("/hub/accounts/2fa/authenticate/", {"code": wrong})
    assert not logged_in(client)


def test_the_current_code_signs_in(fresh_limits, alice_with_totp):
    client = Client()
    client.post("/hub/login", {"login": "alice", "password": PASSWORD})
    response = client.post("/hub/accounts/2fa/authenticate/", {"code": totp_code(alice_with_totp)})
    assert response.status_code == 302 and response["Location"] == "/hub/home"
    assert logged_in(client)


def test_a_user_turns_totp_on_from_the_page(fresh_limits, alice):
    client = Client()
    client.post("/hub/login", {"login": "alice", "password": PASSWORD})
    page = client.get("/hub/accounts/2fa/totp/activate/", follow=True)
    if "reauthenticate" in page.request["PATH_INFO"]:  # the password again, first
        page = client.post(
            page.request["PATH_INFO"] + "?next=/hub/accounts/2fa/totp/activate/",
            {"password": PASSWORD},
            follow=True,
        )
    assert page.status_code == 200
    secret = page.context["form"].secret
    response = client.post("/hub/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302
    assert alice.authenticator_set.filter(type="totp").exists()


def test_a_user_changes_their_password(fresh_limits, alice):
    client = Client()
    client.force_login(alice)
    new = "a new horse battery staple"
    data = {"oldpassword": PASSWORD, "password1": new, "password2": new}
    assert client.post("/hub/accounts/password/change/", data).status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(new)


def test_password_rules_apply_to_a_new_password(fresh_limits, alice):
    client = Client()
    client.force_login(alice)
    data = {"oldpassword": PASSWORD, "password1": "password", "password2": "password"}
    response = client.post("/hub/accounts/password/change/", data)
    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_a_password_reset_by_mail_sets_a_new_password(fresh_limits, alice, settings):
    from allauth.account.models import EmailAddress

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    alice.email = "alice@example.org"
    alice.save()
    EmailAddress.objects.create(user=alice, email=alice.email, verified=True, primary=True)
    client = Client()
    client.post("/hub/accounts/password/reset/", {"email": "alice@example.org"})
    (message,) = mail.outbox
    link = re.search(r"http://testserver(/hub/accounts/password/reset/key/\S+)", message.body)
    page = client.get(link.group(1), follow=True)
    new = "reset horse battery staple"
    client.post(page.request["PATH_INFO"], {"password1": new, "password2": new})
    alice.refresh_from_db()
    assert alice.check_password(new)


def test_local_users_find_their_security_page_in_the_menu(alice):
    client = Client()
    client.force_login(alice)
    assert b'href="/hub/accounts/2fa/"' in client.get("/hub/token").content
    assert client.get("/hub/accounts/2fa/").status_code == 200


@pytest.fixture
def mail_on(settings):
    """What HUB_SMTP_HOST turns on (hubsite/signin.py), with Django's locmem outbox."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.HUB_SIGNUP_REQUIRES_APPROVAL = False


def test_with_mail_a_sign_up_must_confirm_its_address_before_logging_in(fresh_limits, mail_on):
    client = Client()
    data = {"username": "dave", "email": "dave@example.org"}
    client.post("/hub/signup", {**data, "password1": PASSWORD, "password2": PASSWORD})
    assert not logged_in(client)
    (message,) = mail.outbox
    link = re.search(r"http://testserver(/hub/accounts/confirm-email/\S+)", message.body).group(1)
    refused = Client()
    refused.post("/hub/login", {"login": "dave", "password": PASSWORD})
    assert not logged_in(refused)
    client.post(link)
    later = Client()
    later.post("/hub/login", {"login": "dave", "password": PASSWORD})
    assert logged_in(later)


def test_the_mail_settings_come_from_hub_smtp_variables(monkeypatch):
    from hubsite import signin

    monkeypatch.setenv("HUB_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HUB_SMTP_PORT", "2525")
    monkeypatch.setenv("HUB_EMAIL_FROM", "hub@example.org")
    made = signin.mail_settings()
    assert (made["EMAIL_HOST"], made["EMAIL_PORT"], made["DEFAULT_FROM_EMAIL"]) == (
        "127.0.0.1",
        2525,
        "hub@example.org",
    )
    assert made["ACCOUNT_EMAIL_VERIFICATION"] == "mandatory"
    monkeypatch.delenv("HUB_SMTP_HOST")
    assert signin.mail_settings()["EMAIL_BACKEND"].endswith("console.EmailBackend")
