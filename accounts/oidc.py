"""Single sign-on with OpenID Connect (docs/sso.md): mozilla-django-oidc's backend and views, given the
provider's endpoints by its discovery document, and an account found by issuer + subject.

The flow: the login page's button -> `SsoStartView` (state, nonce and PKCE in the session) -> the
provider -> `SsoCallbackView` -> `SsoBackend.authenticate` (code for tokens, the ID token's RS256
signature checked with the provider's JWKS, its issuer, audience and expiry) -> `sso_user_sign_in`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts.models import SsoIdentity

logger = logging.getLogger(__name__)

SSO_FAILED = "Single sign-on did not work. Try again, or ask your administrator."
SSO_UNAVAILABLE = "The single sign-on provider cannot be reached right now. Try again in a moment."
SSO_AUTHENTICATED_AT = "sso_authenticated_at"
"""The session key holding when (Unix time) this session last signed in through the provider."""
DISCOVERY_PATH = "/.well-known/openid-configuration"
GROUPS_MAX = 100
GROUP_NAME_MAX = 150  # Group.name's max_length
USERNAME_MAX = 150  # User.username's max_length
_USERNAME_CHARS = re.compile(r"[^\w.@+-]")  # what Django's UnicodeUsernameValidator refuses


class DiscoveryError(Exception):
    """The provider's discovery document could not be fetched or is not for OIDC_ISSUER."""


@dataclass(frozen=True)
class ProviderEndpoints:
    """What the discovery document says, for the parts this product uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""


def discovery_parse(document: Any, *, issuer: str) -> ProviderEndpoints:
    """The endpoints of a discovery document, refused unless it names `issuer` exactly (OIDC Discovery 4.3)."""
    if not isinstance(document, dict):
        raise DiscoveryError("the discovery document is not a JSON object")
    if document.get("issuer") != issuer:
        raise DiscoveryError(
            f"the discovery document's issuer {document.get('issuer')!r} is not OIDC_ISSUER {issuer!r}"
        )
    values = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        value = document.get(name, "")
        if not isinstance(value, str) or (value and not value.startswith(("https://", "http://"))):
            raise DiscoveryError(f"the discovery document's {name} is not a URL")
        values[name] = value
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not values[name]:
            raise DiscoveryError(f"the discovery document has no {name}")
    return ProviderEndpoints(issuer=issuer, **values)


class ProviderDiscovery:
    """The provider's endpoints, fetched once (lazily, at the first sign-in) and kept for the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: ProviderEndpoints | None = None

    def endpoints(self) -> ProviderEndpoints:
        with self._lock:
            if self._endpoints is None:
                self._endpoints = self._fetch(settings.OIDC_ISSUER)
            return self._endpoints

    def _fetch(self, issuer: str) -> ProviderEndpoints:
        url = issuer.rstrip("/") + DISCOVERY_PATH
        try:
            response = requests.get(url, timeout=settings.OIDC_TIMEOUT, allow_redirects=False)
            response.raise_for_status()
            document = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise DiscoveryError(f"{url}: {exc}") from exc
        return discovery_parse(document, issuer=issuer)

    def shutdown(self) -> None:
        """Forget the endpoints: the next sign-in fetches them again."""
        with self._lock:
            self._endpoints = None


provider_discovery = ProviderDiscovery()


def username_make(claims: dict[str, Any]) -> str:
    """A free, valid username from `preferred_username`, else the email's local part, else "user"."""
    wanted = claims.get("preferred_username")
    if not isinstance(wanted, str) or not wanted.strip():
        email = claims.get("email")
        wanted = email.split("@", 1)[0] if isinstance(email, str) else ""
    base = _USERNAME_CHARS.sub("_", wanted.strip())[: USERNAME_MAX - 9].strip("_") or "user"
    users = get_user_model().objects
    for candidate in [base, *(f"{base}-{n}" for n in range(2, 10))]:
        if not users.filter(username__iexact=candidate).exists():
            return candidate
    return f"{base}-{uuid.uuid4().hex[:8]}"


def email_from_claims(claims: dict[str, Any]) -> str:
    """The `email` claim, unless the provider calls it unverified (`email_verified` false) or it is no address."""
    email = claims.get("email")
    if not isinstance(email, str) or len(email) > 254 or claims.get("email_verified") is False:
        return ""
    try:
        validate_email(email)
    except ValidationError:
        return ""
    return get_user_model().objects.normalize_email(email)


def group_names_from_claims(claims: dict[str, Any], claim: str) -> list[str]:
    """The group names of `claim` (a list of strings): at most GROUPS_MAX, each 1..GROUP_NAME_MAX characters."""
    values = claims.get(claim, [])
    if not isinstance(values, list):
        logger.warning("sso: the %s claim is not a list; no groups", claim)
        return []
    names: list[str] = []
    for value in values:
        if isinstance(value, str) and 0 < len(value.strip()) <= GROUP_NAME_MAX and value.strip() not in names:
            names.append(value.strip())
    if len(names) > GROUPS_MAX:
        logger.warning("sso: %d groups in the %s claim; the first %d kept", len(names), claim, GROUPS_MAX)
    return names[:GROUPS_MAX]


def _groups_set(user: AbstractBaseUser, names: list[str]) -> None:
    groups = [Group.objects.get_or_create(name=name)[0] for name in names]
    user.groups.set(groups)


@transaction.atomic
def sso_user_sign_in(*, issuer: str, claims: dict[str, Any]) -> AbstractBaseUser:
    """The user of `issuer` + `claims["sub"]`, created at the first sign-in; email and groups updated each time."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not 0 < len(subject) <= 255:
        raise SuspiciousOperation("the ID token has no usable sub")
    identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    email = email_from_claims(claims)
    if identity is None:
        user = get_user_model().objects.create_user(username_make(claims), email=email)  # no password: unusable
        identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        logger.info("sso: account %s created for %s", user.pk, identity)
    user = identity.user
    if email and user.email != email:
        user.email = email
        user.save(update_fields=["email"])
    if settings.OIDC_GROUPS_CLAIM:
        _groups_set(user, group_names_from_claims(claims, settings.OIDC_GROUPS_CLAIM))
    identity.last_login = timezone.now()
    identity.save(update_fields=["last_login"])
    return user


def sso_recently_authenticated(request: HttpRequest, *, seconds: float) -> bool:
    """Whether this session signed in through the provider within the last `seconds`."""
    at = request.session.get(SSO_AUTHENTICATED_AT)
    return isinstance(at, (int, float)) and 0 <= time.time() - at < seconds


class SsoBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with discovered endpoints, a checked ID token, and identity by issuer + sub."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not the parent's: it reads the endpoints from settings, and this backend is also built for
        # every request of a signed-in user (`get_user`), which must not wait for the provider.
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.UserModel = get_user_model()

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return provider_discovery.endpoints().token_endpoint

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return provider_discovery.endpoints().jwks_uri

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:
        return provider_discovery.endpoints().userinfo_endpoint

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> AbstractBaseUser | None:
        """A sign-in that fails at the provider (down, an error, a bad token) is a failed sign-in, not a 500."""
        if request is None or "nonce" not in kwargs:
            return None  # not from SsoCallbackView (which checked the state): a password login is ModelBackend's
        try:
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, SuspiciousOperation, DiscoveryError, ValueError, KeyError) as exc:
            logger.warning("sso: sign-in failed: %s", exc)
            return None

    def get_user(self, user_id: int) -> AbstractBaseUser | None:
        """Django's (mozilla-django-oidc's would keep a deactivated user's sessions logged in)."""
        return ModelBackend.get_user(self, user_id)

    def get_payload_data(self, token: bytes | str, key: Any) -> dict[str, Any]:
        """The ID token's claims: RS256, signed by the provider's key, for this client, from OIDC_ISSUER, unexpired."""
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}") from exc

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> AbstractBaseUser:
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = self.get_userinfo(access_token, id_token, payload)
            if not isinstance(userinfo, dict) or userinfo.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("the userinfo's sub is not the ID token's")
            claims.update({k: v for k, v in userinfo.items() if k not in ("iss", "aud", "sub")})
        return sso_user_sign_in(issuer=payload["iss"], claims=claims)


class SsoStartView(OIDCAuthenticationRequestView):
    """The login page's button: off to the provider (`?next=` where to come back; `?reauth=1` asks it to ask again)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.SSO_ENABLED:
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_discovery.endpoints().authorization_endpoint
        except DiscoveryError as exc:
            logger.warning("sso: discovery failed: %s", exc)
            messages.error(request, SSO_UNAVAILABLE)
            return redirect("login")
        return super().get(request)

    def get_extra_params(self, request: HttpRequest) -> dict[str, str]:
        return {"prompt": "login"} if request.GET.get("reauth") == "1" else {}


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the browser back here with a code; signed in, the session notes when."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.SSO_ENABLED:
            raise Http404("Single sign-on is not configured.")
        return super().get(request)

    def login_success(self) -> HttpResponse:
        response = super().login_success()
        self.request.session[SSO_AUTHENTICATED_AT] = time.time()
        return response

    def login_failure(self) -> HttpResponse:
        messages.error(self.request, SSO_FAILED)
        return redirect("login")
