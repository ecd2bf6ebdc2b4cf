"""Single sign-on's own rules, without a provider: usernames, groups, emails, the discovery document,
identity by issuer + subject, and the pages that sign-up closed, password login off and an account
without a password change. The protocol itself is tested against a real provider (test_oidc_live.py)."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client, override_settings
from django.urls import reverse
from django.utils.html import escape

from accounts.models import SsoIdentity
from accounts.my_data_views import SSO_CONFIRM_NEEDED
from accounts.oidc import (
    GROUP_NAME_MAX,
    GROUPS_MAX,
    SSO_AUTHENTICATED_AT,
    DiscoveryError,
    discovery_parse,
    email_from_claims,
    group_names_from_claims,
    sso_user_sign_in,
    username_make,
)
from accounts.views import PASSWORD_LOGIN_OFF, PASSWORDS_MANAGED, SIGNUP_CLOSED
from tests.support.users import PASSWORD, make_user

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example.com"
SSO = {
    "SSO_ENABLED": True,
    "OIDC_ISSUER": ISSUER,
    "OIDC_RP_CLIENT_ID": "c",
    "OIDC_RP_CLIENT_SECRET": "s",
    "OIDC_GROUPS_CLAIM": "groups",
}
DOCUMENT = {
    "issuer": ISSUER,
    "authorization_endpoint": f"{ISSUER}/authorize",
    "token_endpoint": f"{ISSUER}/token",
    "jwks_uri": f"{ISSUER}/jwks",
    "userinfo_endpoint": f"{ISSUER}/userinfo",
}


def test_usernames_come_from_the_claims_made_valid_and_free() -> None:
    assert username_make({"preferred_username": "ann.lee"}) == "ann.lee"
    assert username_make({"email": "bo b@example.com"}) == "bo_b"
    assert username_make({"preferred_username": "  ", "email": 7}) == "user"
    assert username_make({"preferred_username": "a/b\\c<d>"}) == "a_b_c_d"
    assert len(username_make({"preferred_username": "x" * 500})) <= 150
    make_user("ann")
    make_user("ann-2")
    assert username_make({"preferred_username": "ANN"}) == "ANN-3"  # free whatever the case


def test_groups_are_strings_bounded_in_count_and_length() -> None:
    claims = {"groups": ["a", "a", 3, None, "", " b ", "x" * (GROUP_NAME_MAX + 1), {"c": 1}]}
    assert group_names_from_claims(claims, "groups") == ["a", "b"]
    many = {"groups": [f"g{n}" for n in range(GROUPS_MAX + 50)]}
    assert len(group_names_from_claims(many, "groups")) == GROUPS_MAX
    assert group_names_from_claims({"groups": "admins"}, "groups") == []
    assert group_names_from_claims({}, "groups") == []


def test_an_email_the_provider_calls_unverified_is_not_kept() -> None:
    assert email_from_claims({"email": "a@example.com", "email_verified": True}) == "a@example.com"
    assert email_from_claims({"email": "a@example.com"}) == "a@example.com"
    assert email_from_claims({"email": "a@example.com", "email_verified": False}) == ""
    assert email_from_claims({"email": "not an address"}) == ""
    assert email_from_claims({"email": "a@" + "b" * 300 + ".com"}) == ""


def test_discovery_must_name_the_configured_issuer() -> None:
    assert discovery_parse(DOCUMENT, issuer=ISSUER).token_endpoint == f"{ISSUER}/token"
    with pytest.raises(DiscoveryError, match="issuer"):
        discovery_parse({**DOCUMENT, "issuer": "https://evil.example.com"}, issuer=ISSUER)
    with pytest.raises(DiscoveryError, match="issuer"):
        discovery_parse({**DOCUMENT, "issuer": ISSUER + "/"}, issuer=ISSUER)
    with pytest.raises(DiscoveryError, match="jwks_uri"):
        discovery_parse({k: v for k, v in DOCUMENT.items() if k != "jwks_uri"}, issuer=ISSUER)
    with pytest.raises(DiscoveryError, match="not a URL"):
        discovery_parse({**DOCUMENT, "token_endpoint": "javascript:x"}, issuer=ISSUER)
    with pytest.raises(DiscoveryError):
        discovery_parse(["not", "an", "object"], issuer=ISSUER)


@override_settings(**SSO)
def test_accounts_are_found_by_issuer_and_subject_never_by_email() -> None:
    victim = make_user("victim", email="boss@example.com")
    user = sso_user_sign_in(issuer=ISSUER, claims={"sub": "1", "email": "boss@example.com", "groups": ["eng"]})
    assert user != victim and user.username == "boss" and not user.has_usable_password()
    assert SsoIdentity.objects.get(user=user).subject == "1"
    again = sso_user_sign_in(issuer=ISSUER, claims={"sub": "1", "email": "new@example.com", "groups": ["ops"]})
    assert again == user
    user.refresh_from_db()
    assert user.email == "new@example.com"
    assert list(user.groups.values_list("name", flat=True)) == ["ops"]
    assert Group.objects.filter(name="eng").exists()
    other_issuer = sso_user_sign_in(issuer="https://other.example.com", claims={"sub": "1"})
    assert other_issuer != user
    with pytest.raises(Exception, match="sub"):
        sso_user_sign_in(issuer=ISSUER, claims={"sub": 5})


def test_sign_up_closed_answers_404_and_its_link_goes() -> None:
    client = Client()
    with override_settings(SIGNUP_ENABLED=False):
        page = client.get(reverse("signup"))
        assert page.status_code == 404 and SIGNUP_CLOSED in page.content.decode()
        assert client.post(reverse("signup"), {"username": "x"}).status_code == 404
        assert 'data-testid="signup-link"' not in client.get(reverse("login")).content.decode()
    assert 'data-testid="signup-link"' in client.get(reverse("login")).content.decode()


@override_settings(**SSO, PASSWORD_LOGIN_ENABLED=False)
def test_password_login_off_refuses_a_right_password() -> None:
    make_user("carol")
    client = Client()
    page = client.get(reverse("login")).content.decode()
    assert 'data-testid="sso-login"' in page and 'name="password"' not in page
    refused = client.post(reverse("login"), {"username": "carol", "password": PASSWORD})
    assert refused.status_code == 403 and escape(PASSWORD_LOGIN_OFF) in refused.content.decode()
    assert "_auth_user_id" not in client.session
    admin = client.post("/admin/login/", {"username": "carol", "password": PASSWORD})
    assert admin.status_code == 403
    assert client.get(reverse("password_reset")).status_code == 404


@override_settings(**SSO)
def test_an_account_without_a_password_keeps_the_sessions_part_of_the_password_page() -> None:
    user = sso_user_sign_in(issuer=ISSUER, claims={"sub": "2", "preferred_username": "dan"})
    client = Client()
    client.force_login(user)
    page = client.get(reverse("password_change")).content.decode()
    assert escape(PASSWORDS_MANAGED) in page and 'data-testid="logout-other-sessions"' in page
    assert client.post(reverse("password_change"), {"new_password1": "x"}).status_code == 403


@override_settings(**SSO)
def test_deleting_an_sso_account_needs_a_fresh_sign_in() -> None:
    user = sso_user_sign_in(issuer=ISSUER, claims={"sub": "3", "preferred_username": "eve"})
    client = Client()
    client.force_login(user)
    page = client.get(reverse("account_delete")).content.decode()
    assert 'data-testid="delete-sso-confirm"' in page and "reauth=1" in page
    refused = client.post(reverse("account_delete"))
    assert refused.status_code == 400 and SSO_CONFIRM_NEEDED in refused.content.decode()
    session = client.session
    session[SSO_AUTHENTICATED_AT] = time.time() - 301
    session.save()
    assert client.post(reverse("account_delete")).status_code == 400
    session[SSO_AUTHENTICATED_AT] = time.time()
    session.save()
    assert client.post(reverse("account_delete")).status_code == 302
    assert not User.objects.filter(pk=user.pk).exists() and not SsoIdentity.objects.exists()


@override_settings(
    **SSO, AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend", "accounts.oidc.SsoBackend"]
)
def test_a_deactivated_sso_user_is_logged_out_of_the_pages() -> None:
    user = sso_user_sign_in(issuer=ISSUER, claims={"sub": "4", "preferred_username": "fay"})
    client = Client()
    client.force_login(user, backend="accounts.oidc.SsoBackend")
    assert client.get(reverse("conversation_list")).status_code == 200
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert client.get(reverse("conversation_list")).status_code == 302
