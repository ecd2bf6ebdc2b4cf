"""The read record names a deleted user by a pseudonym, never by their name.

`TranscriptRead` keeps who read which transcript, and whose it was, after the reader, the owner
or the conversation is deleted. When a user is deleted (the admin, the ORM, any path: a
`pre_delete` receiver on the user model, connected in `ReviewConfig.ready`), every read naming them,
as owner or as reader, gets `deleted-user-<12 hex>` instead of their username: the first 12 hex
digits of HMAC-SHA256(SECRET_KEY, "user:<id>"). The same person gets the same pseudonym in both
columns, so their reads stay linkable; without the SECRET_KEY it leads back to no name.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q

from review.models import TranscriptRead

PREFIX = "deleted-user-"


def user_pseudonym(user_id: int) -> str:
    """The deleted user `user_id`'s name in the read record: stable, and not the username."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"user:{user_id}".encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:12]


def reads_pseudonymise(sender: type, instance: AbstractBaseUser, using: str = "default", **kwargs: Any) -> None:
    """`pre_delete` of a user: the reads naming them, as owner or reader, name their pseudonym instead.

    Their reads are found by the links while the rows still hold them (the reader; the conversation's
    owner), and, as owner, by the username in reads whose conversation was deleted earlier.
    """
    pseudonym = user_pseudonym(instance.pk)
    username = instance.get_username()
    reads = TranscriptRead.objects.using(using)
    reads.filter(Q(conversation__owner_id=instance.pk) | Q(conversation__isnull=True, owner_username=username)).update(
        owner_username=pseudonym
    )
    reads.filter(reader_id=instance.pk).update(reader_username=pseudonym)
