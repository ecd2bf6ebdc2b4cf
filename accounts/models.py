"""Who a single sign-on account is: the provider (issuer) and its subject, never an email address."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SsoIdentity(models.Model):
    """One provider's account (`issuer` + `sub`) signs in as one user of ours.

    Emails change hands and providers let people type any address; the issuer's subject is the only
    identifier that OpenID Connect promises is stable and never reassigned.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identity")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created = models.DateTimeField(auto_now_add=True)
    last_login = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_issuer_subject")]

    def __str__(self) -> str:
        return f"{self.issuer} {self.subject}"
