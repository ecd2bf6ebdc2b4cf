"""A search of thousands of words against a real server process, on SQLite and on PostgreSQL: refused
`bad_request` at once, by the API and the pages alike, where it used to take seconds or answer 500."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.services import require_postgres
from tests.support.deployments import live_deployment

WORDS = " ".join(f"word{n}" for n in range(2000))
TRIES = 5


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request):
    url = require_postgres() if request.param == "postgres" else None
    with live_deployment(database_url=url) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def session(database):
    server = database.start_server()
    session = database.sign_up(server)
    session.new_conversation()
    return session


def test_two_thousand_words_of_q_are_refused_by_the_api_in_under_100_ms(session):
    answers, took = [], []
    for _ in range(TRIES):
        started = time.perf_counter()
        answers.append(session.http.get("/api/conversations/", params={"q": WORDS}))
        took.append(time.perf_counter() - started)

    for response in answers:
        assert response.status_code == 400, response.text[:500]
        error = response.json()["error"]
        assert error["code"] == "bad_request" and "12 words" in error["message"]
    assert statistics.median(took) < 0.1, took


def test_the_pages_refuse_it_with_the_message_not_a_500(session):
    listing = session.http.get("/", params={"q": WORDS})
    sidebar = session.http.get("/conversations/search/", params={"q": WORDS})
    within = session.http.get("/api/conversations/", params={"q": "word0 word1"})

    assert listing.status_code == 400 and 'data-testid="search-refused"' in listing.text
    assert sidebar.status_code == 400 and sidebar.json()["error"]["code"] == "bad_request"
    assert within.status_code == 200 and within.json() == []
