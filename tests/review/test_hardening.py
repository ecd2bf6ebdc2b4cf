"""What a reviewer cannot learn or break: the list's filters tell no tool argument and no name of a
user the reader may not list, the usage CSV holds no cell a spreadsheet would run, and neither the
usage page nor the list's date bar answers a date it cannot handle with a 500."""

from __future__ import annotations

import csv
import io
import re

import pytest
from django.urls import reverse

from conversations.models import Conversation
from review.filters import OwnerFilter
from review.usage import CSV_HEADER
from review.views import (
    DATE_MALFORMED,
    DATE_OUT_OF_RANGE,
    FIRST_DAY,
    LAST_DAY,
    PERIOD_BACKWARDS,
    PERIOD_TOO_LONG,
    SPREADSHEET_FORMULA_STARTS,
)
from tests.support.review import CHANGELIST, add_turn, found
from tests.support.users import make_staff, make_user

pytestmark = pytest.mark.django_db

USAGE = "admin:conversations_conversation_usage"


# ------------------------------------------------------------------ the list's filters


@pytest.fixture
def customer_lookup(alice) -> Conversation:
    """A conversation whose tool steps hold a customer's name in their arguments and result."""
    conversation = Conversation.objects.create(owner=alice, title="Who ordered?")
    steps = [
        "a stray step that is no object",
        {"call_id": "c1", "name": "find_customer", "args": {"name": "Jane Doe"}, "output": {"name": "Jane Doe"}},
        {"call_id": "c2", "name": "café_menu", "args": {}, "output": "tea"},
    ]
    add_turn(conversation, "Who ordered 31?", {"content": "Jane Doe.", "tool_steps": steps})
    return conversation


@pytest.mark.parametrize(
    "probe",
    ["Jane Doe", "jane doe", "FIND_CUSTOMER", "find", "customer", 'find_customer", "args', "a stray step"],
)
def test_the_tool_filter_matches_tool_names_only_never_arguments_or_results(client, customer_lookup, probe):
    client.force_login(make_staff("reviewer", "view_conversation"))

    assert found(client, tool="find_customer") == [customer_lookup.pk]
    assert found(client, tool="café_menu") == [customer_lookup.pk]  # stored as `\u00e9` on SQLite
    assert found(client, tool=probe) == []


@pytest.mark.parametrize("owner", ["hidden", "nobody", "²", "-1", "1e3", "99999999999999999999999"])
def test_the_owner_filter_names_only_owners_of_conversations_the_reader_may_list(client, alice, owner):
    hidden = make_user("root-of-all-7", is_staff=True, is_superuser=True)  # owns no conversation
    Conversation.objects.create(owner=alice, title="Alice's")
    client.force_login(make_staff("reviewer", "view_conversation"))
    value = {"hidden": hidden.pk, "nobody": hidden.pk + 1000}.get(owner, owner)

    page = client.get(reverse(CHANGELIST), {"owner": value})

    assert page.status_code == 200
    assert page.context["cl"].result_list.count() == 0
    assert owner_choices(page) == []
    assert "root-of-all-7" not in page.content.decode()
    listed = client.get(reverse(CHANGELIST), {"owner": alice.pk})
    assert owner_choices(listed) == [(str(alice.pk), "alice")]


def owner_choices(page) -> list[tuple[str, str]]:
    """The owner filter's choices on a page of the conversation list."""
    (spec,) = [spec for spec in page.context["cl"].filter_specs if isinstance(spec, OwnerFilter)]
    return spec.lookup_choices


# ------------------------------------------------------------------ the usage CSV


HOSTILE_NAMES = ["+1+1", '=HYPERLINK("https://evil.example","x")', "@SUM(A1)", "-2+3", "\tcmd", "\rcmd"]


def test_the_usage_csv_neutralises_every_text_cell_a_spreadsheet_would_run_and_keeps_numbers(client, alice):
    for name in HOSTILE_NAMES:
        conversation = Conversation.objects.create(owner=make_user(name), assistant_id="=assistant")
        usage = {"input_tokens": -5, "output_tokens": 2}  # a negative figure stays a number
        add_turn(conversation, "q", {"model": "+model", "usage": usage})
    client.force_login(make_staff("reviewer", "view_conversation"))

    download = client.get(reverse(USAGE), {"format": "csv"})

    assert download.status_code == 200
    header, *rows = list(csv.reader(io.StringIO(download.content.decode())))
    assert tuple(header) == CSV_HEADER
    assert sorted(row[1] for row in rows) == sorted(f"'{name}" for name in HOSTILE_NAMES)
    assert {(row[2], row[3]) for row in rows} == {("'=assistant", "'+model")}
    assert {row[5] for row in rows} == {"-5"} and {row[7] for row in rows} == {"-3"}
    for row in rows:
        for cell in row:
            assert not cell.startswith(SPREADSHEET_FORMULA_STARTS) or re.fullmatch(r"-\d+", cell)


# ------------------------------------------------------------------ the usage page's period


@pytest.mark.parametrize(
    ("period", "problem"),
    [
        ({"start": "9999-12-31", "end": "9999-12-31"}, DATE_OUT_OF_RANGE.format(which="start")),
        ({"start": "0001-01-01", "end": "0001-01-02"}, DATE_OUT_OF_RANGE.format(which="end")),
        ({"end": "1999-12-31"}, DATE_OUT_OF_RANGE.format(which="end")),
        ({"start": "2026-02-30", "end": "2026-03-01"}, DATE_MALFORMED.format(which="start")),
        ({"start": "2026-03-01", "end": "tomorrow"}, DATE_MALFORMED.format(which="end")),
        ({"start": "2026-03-05", "end": "2026-03-01"}, PERIOD_BACKWARDS),
        ({"start": "2024-01-01", "end": "2026-01-01"}, PERIOD_TOO_LONG),
    ],
    ids=["year-9999", "year-1", "before-first", "february-30", "words", "backwards", "too-long"],
)
def test_a_period_the_usage_page_cannot_show_is_refused_with_400_not_500(client, period, problem):
    client.force_login(make_staff("reviewer", "view_conversation"))

    page = client.get(reverse(USAGE), period)
    download = client.get(reverse(USAGE), {**period, "format": "csv"})

    assert page.status_code == 400
    assert problem in page.content.decode() and 'role="alert"' in page.content.decode()
    assert page.context["report"] is None
    assert download.status_code == 400 and download["Content-Type"].startswith("text/plain")
    assert problem in download.content.decode()


def test_the_first_and_last_days_the_usage_page_shows_work_to_the_day(client):
    client.force_login(make_staff("reviewer", "view_conversation"))

    for day in (FIRST_DAY, LAST_DAY):
        period = {"start": day.isoformat(), "end": day.isoformat()}
        assert client.get(reverse(USAGE), period).context["report"].days[0][0] == day
        assert client.get(reverse(USAGE), {**period, "format": "csv"}).status_code == 200


# ------------------------------------------------------------------ the list's date bar


@pytest.mark.parametrize("day", [{}, {"created__month": "12"}, {"created__month": "12", "created__day": "31"}])
def test_the_conversation_lists_date_bar_refuses_the_calendars_last_year_not_500(client, day):
    client.force_login(make_staff("reviewer", "view_conversation"))

    listing = client.get(reverse(CHANGELIST), {"created__year": "9999", **day})

    assert listing.status_code == 302 and listing["Location"].endswith("?e=1")  # Django's "bad parameters"
    assert client.get(reverse(CHANGELIST), {"created__year": "9998", **day}).status_code == 200
