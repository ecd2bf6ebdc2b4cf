"""Single sign-on end to end: the product's server and a real OpenID Connect provider (django-oauth-toolkit,
`tests/oidc_provider`), each in its own process; a client signs in through the provider's login form."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.live_server import PASSWORD, ROOT, Deployment, Server, free_port
from tests.oidc_provider.running import Provider, start_provider

pytestmark = pytest.mark.live

ANN = {"username": "ann", "password": "ann-provider-pass-1", "email": "ann@example.com", "groups": ["engineering"]}


@dataclass
class Sso:
    deployment: Deployment
    provider: Provider
    server: Server


def _start(tmp_path, **extra_env: str) -> Sso:
    port = free_port()
    provider = start_provider(
        redirect_uri=f"http://127.0.0.1:{port}/accounts/sso/callback/", users=[ANN], workdir=tmp_path
    )
    deployment = Deployment.create()
    try:
        env = {**provider.product_env, "OIDC_GROUPS_CLAIM": "groups", "OIDC_BUTTON_LABEL": "Sign in with Example"}
        server = deployment.start_server(port=port, **env, **extra_env)
    except BaseException:
        deployment.close()
        provider.stop()
        raise
    return Sso(deployment=deployment, provider=provider, server=server)


@pytest.fixture
def sso(tmp_path) -> Iterator[Sso]:
    started = _start(tmp_path)
    yield started
    started.deployment.close()
    started.provider.stop()


@pytest.fixture
def sso_only(tmp_path) -> Iterator[Sso]:
    started = _start(tmp_path, PASSWORD_LOGIN_ENABLED="0", SIGNUP_ENABLED="0")
    yield started
    started.deployment.close()
    started.provider.stop()


def sign_in_through_provider(server: Server, person: dict, *, http: httpx.Client | None = None) -> httpx.Client:
    """Like a person: the login page's button, the provider's login form, back to the product."""
    http = http or httpx.Client(timeout=15, follow_redirects=True)
    login_page = http.get(f"{server.http_url}/accounts/login/")
    assert login_page.status_code == 200
    button = re.search(r'href="([^"]+)" data-testid="sso-login">Sign in with Example<', login_page.text)
    assert button, login_page.text
    provider_form = http.get(f"{server.http_url}{button.group(1).replace('&amp;', '&')}")
    assert provider_form.status_code == 200 and "Test identity provider" in provider_form.text, provider_form.text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', provider_form.text).group(1)
    next_url = re.search(r'name="next" value="([^"]+)"', provider_form.text).group(1).replace("&amp;", "&")
    back = http.post(
        str(provider_form.url),
        data={
            "csrfmiddlewaretoken": csrf,
            "username": person["username"],
            "password": person["password"],
            "next": next_url,
        },
    )
    assert str(back.url).startswith(server.http_url), [str(r.url) for r in back.history]
    return http


def test_sso_signs_in_creates_the_user_maps_groups_and_reuses_the_account(sso: Sso) -> None:
    http = sign_in_through_provider(sso.server, ANN)
    page = http.get(f"{sso.server.http_url}/")
    assert page.status_code == 200
    assert 'title="Signed in as ann"' in page.text, page.text[:3000]

    users = sso.deployment.query("SELECT id, username, email, password FROM auth_user")
    assert [(u[1], u[2]) for u in users] == [("ann", "ann@example.com")]
    assert users[0][3].startswith("!")  # an unusable password
    identities = sso.deployment.query("SELECT user_id, issuer FROM accounts_ssoidentity")
    assert identities == [(users[0][0], sso.provider.issuer)]
    groups = sso.deployment.query(
        "SELECT g.name FROM auth_group g JOIN auth_user_groups ug ON ug.group_id = g.id WHERE ug.user_id = %s",
        users[0][0],
    )
    assert groups == [("engineering",)]

    again = sign_in_through_provider(sso.server, ANN)  # a new browser, the same person
    assert 'title="Signed in as ann"' in again.get(f"{sso.server.http_url}/").text
    assert len(sso.deployment.query("SELECT id FROM auth_user")) == 1


def test_a_wrong_provider_password_signs_nobody_in(sso: Sso) -> None:
    http = httpx.Client(timeout=15, follow_redirects=True)
    with pytest.raises(AssertionError):
        sign_in_through_provider(sso.server, {**ANN, "password": "wrong-password-123"}, http=http)
    assert http.get(f"{sso.server.http_url}/").url.path == "/accounts/login/"
    assert sso.deployment.query("SELECT id FROM auth_user") == []


def test_a_forged_callback_signs_nobody_in(sso: Sso) -> None:
    http = httpx.Client(timeout=15, follow_redirects=True)
    http.get(f"{sso.server.http_url}/accounts/sso/start/", follow_redirects=False)  # state in the session
    answer = http.get(f"{sso.server.http_url}/accounts/sso/callback/?code=forged&state=forged")
    assert answer.status_code == 400
    answer = http.get(f"{sso.server.http_url}/accounts/sso/callback/?error=access_denied&state=x")
    assert answer.url.path == "/accounts/login/" and "Single sign-on did not work" in answer.text
    assert sso.deployment.query("SELECT id FROM auth_user") == []


def test_sso_only_refuses_passwords_and_closes_sign_up(sso_only: Sso) -> None:
    server = sso_only.server
    http = httpx.Client(base_url=server.http_url, timeout=15)
    login_page = http.get("/accounts/login/")
    assert 'data-testid="sso-login"' in login_page.text
    assert 'name="password"' not in login_page.text and 'data-testid="signup-link"' not in login_page.text
    csrf = "c" * 32  # the page has no form, so no token: a browser-made one passes Django's double-submit check
    http.cookies.set("csrftoken", csrf)
    for path in ("/accounts/login/", "/admin/login/"):
        refused = http.post(path, data={"csrfmiddlewaretoken": csrf, "username": "x", "password": PASSWORD})
        assert refused.status_code == 403, path
        assert "sign in with your company" in refused.text
    assert http.get("/accounts/signup/").status_code == 404
    assert "Sign-up is closed" in http.get("/accounts/signup/").text
    assert http.get("/accounts/password_reset/").status_code == 404
    admin = http.get("/admin/login/?next=/admin/")
    assert admin.status_code == 302 and admin.headers["location"].startswith("/accounts/login/?next=")

    signed_in = sign_in_through_provider(server, ANN)  # single sign-on still creates the account
    assert 'title="Signed in as ann"' in signed_in.get(f"{server.http_url}/").text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIDC_ISSUER": "https://idp.example.com"}, "OIDC_CLIENT_ID, OIDC_CLIENT_SECRET not set"),
        ({"OIDC_CLIENT_SECRET": "s"}, "OIDC_ISSUER, OIDC_CLIENT_ID not set"),
        ({"PASSWORD_LOGIN_ENABLED": "0"}, "PASSWORD_LOGIN_ENABLED=0 needs single sign-on"),
        (
            {"OIDC_ISSUER": "idp.example.com", "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": "s"},
            "OIDC_ISSUER must be an http(s) URL",
        ),
    ],
)
def test_misconfigured_sso_stops_the_process_at_start(env: dict[str, str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SECRET_KEY": "k-" + uuid.uuid4().hex, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr, result.stderr[-2000:]


def test_deleting_an_sso_account_is_confirmed_by_signing_in_again(sso: Sso) -> None:
    http = sign_in_through_provider(sso.server, ANN)
    base = sso.server.http_url
    # The provider is asked to ask again (prompt=login): its login form, then back to the delete page.
    provider_form = http.get(f"{base}/accounts/sso/start/?next=/accounts/delete/&reauth=1")
    assert "Test identity provider" in provider_form.text, provider_form.text[:2000]
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', provider_form.text).group(1)
    next_url = re.search(r'name="next" value="([^"]+)"', provider_form.text).group(1).replace("&amp;", "&")
    back = http.post(
        str(provider_form.url),
        data={"csrfmiddlewaretoken": csrf, "username": ANN["username"], "password": ANN["password"], "next": next_url},
    )
    assert back.url.path == "/accounts/delete/" and 'data-testid="delete-account"' in back.text, back.text[:2000]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', back.text).group(1)
    deleted = http.post(f"{base}/accounts/delete/", data={"csrfmiddlewaretoken": token})
    assert deleted.url.path == "/accounts/login/"
    assert sso.deployment.query("SELECT id FROM auth_user") == []
    assert sso.deployment.query("SELECT id FROM accounts_ssoidentity") == []
