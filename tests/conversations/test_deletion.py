"""A user deleting one of their conversations (the page) goes through the deletion every path shares:
every row of it, and its runs' event logs, which used to wait for their expiry."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.support.stored import full_conversation, logged, rows_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_pages_delete_takes_every_row_and_the_runs_event_logs(alice, bob):
    mine, others = full_conversation(alice), full_conversation(bob)
    client = Client()
    client.force_login(alice)

    assert client.post(reverse("conversation_delete", args=[mine.pk])).status_code == 302

    assert rows_of(mine.pk) == {"conversations": 0, "messages": 0, "feedback": 0, "approvals": 0}
    assert [logged(run_id) for run_id in mine.run_ids] == [[], []]
    assert rows_of(others.pk)["messages"] == 3 and all(logged(run_id) for run_id in others.run_ids)
