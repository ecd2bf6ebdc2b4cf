"""Feedback given in one tab (or any client) shows in the conversation's other open tabs at once."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def test_a_rating_reaches_every_open_tab_with_the_answers_id_and_run(tabs, api):
    first, second = await tabs(), await tabs()
    await first.ask("What is 2 + 2?")
    events = await first.run_events_until_done()
    await second.run_events_until_done()
    run_id = events[0]["run_id"]
    await first.send({"type": "sync"})
    answer = (await first.receive_until(lambda f: f["type"] == "snapshot"))[-1]["messages"][-1]

    body = {"rating": -1, "comment": "Show the steps."}
    rated = await api.post(f"/api/messages/{answer['id']}/feedback", body, content_type="application/json")
    assert rated.status_code == 200

    for tab in (first, second):
        frame = (await tab.receive_until(lambda f: f["type"] == "feedback"))[-1]
        assert (frame["message_id"], frame["run_id"]) == (answer["id"], run_id)
        assert (frame["feedback"]["rating"], frame["feedback"]["comment"]) == (-1, "Show the steps.")
