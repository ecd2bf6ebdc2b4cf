"""Staff review in the admin: who may read transcripts (and the record of who did), finding what to
review, the transcript's safety, the usage figures and their CSV, and the timings runs record."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from agent_runtime.report import RunReport
from agent_runtime.transcript import RunTranscript
from conversations.actions import SEARCH_TOO_LONG
from conversations.models import Budget, Conversation, Message, ToolApproval
from conversations.services import run_finish
from review.charts import compact_number, nice_ceiling
from review.models import TranscriptRead
from review.usage import CSV_HEADER
from review.views import PERIOD_BACKWARDS
from tests.messages import message_append
from tests.support.answers import wait_until_answered
from tests.support.review import CHANGELIST, add_turn, found, transcript_url
from tests.support.runs import collect, offline_run
from tests.support.users import make_staff, make_user

pytestmark = pytest.mark.django_db

USAGE = "admin:conversations_conversation_usage"
READS = "admin:review_transcriptread_changelist"
HOSTILE_ANSWER = (
    "Here: <script>alert('answer')</script> and <img src=x onerror=alert('img')>\n\n"
    "[click me](javascript:alert('link')) · [docs](https://example.org/docs) · ![pixel](https://tracker.example/p.png)\n\n"
    "**Total**: `20`"
)


LONG_OUTPUT = "\n".join(f"line {n}: one mug, blue, 4.90 €" for n in range(1, 40))


def at(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


@pytest.fixture
def reviewed(alice) -> Conversation:
    """Alice's conversation with tool steps (one failed), an approval decided by her, and a failed answer."""
    conversation = Conversation.objects.create(owner=alice, title="Refund and sums", assistant_id="arithmetic")
    answer = add_turn(
        conversation,
        "What is 10 + 10, and refund order 31",
        {
            "content": HOSTILE_ANSWER,
            "tool_steps": [
                {"call_id": "c1", "name": "add", "args": {"x": 10, "y": 10}, "output": 20},
                {
                    "call_id": "c2",
                    "name": "refund",
                    "args": {"order": 31, "city": "Zürich", "note": "<script>alert('args')</script>"},
                    "output": "refunded order 31",
                    "approval": {"approval_id": "ap1", "decision": "approved", "by": "alice"},
                },
                {"call_id": "c3", "name": "divide", "args": {"x": 1, "y": 0}, "error": "division by zero"},
                {"call_id": "c4", "name": "order_lines", "args": {"order": 31}, "output": LONG_OUTPUT},
            ],
            "usage": {"input_tokens": 192, "output_tokens": 34, "total_tokens": 226},
            "first_token_ms": 420,
            "duration_ms": 1840,
        },
    )
    ToolApproval.objects.create(
        conversation=conversation,
        message=answer,
        run_id="r1",
        approval_id="ap1",
        call_id="c2",
        tool="refund",
        arguments={"order": 31},
        decision="approved",
        decided_by=alice,
    )
    add_turn(conversation, "And again?", {"status": "error", "error": "The model service could not be reached."})
    return conversation


# ------------------------------------------------------------------ who may read, and the record


def test_staff_without_view_conversation_are_refused_and_nothing_is_recorded(client, reviewed):
    client.force_login(make_staff("staff", "view_message"))

    assert client.get(transcript_url(reviewed)).status_code == 403
    assert client.get(reverse(USAGE)).status_code == 403
    assert client.get(reverse(USAGE), {"format": "csv"}).status_code == 403
    assert b"usage-link" not in client.get(reverse("admin:index")).content
    assert not TranscriptRead.objects.exists()


def test_staff_with_the_view_permissions_read_the_transcript_and_the_read_is_recorded(client, reviewed):
    reviewer = make_staff("reviewer", "view_conversation", "view_message")
    client.force_login(reviewer)

    page = client.get(transcript_url(reviewed))

    assert page.status_code == 200
    html = page.content.decode()
    assert "What is 10 + 10, and refund order 31" in html
    assert "<b>refund</b>" in html and "<b>divide</b>" in html
    assert "error: division by zero" in html
    assert "approved by alice" in html
    long_step = html[html.index('data-tool="order_lines"') :]
    assert "<details>" in long_step.split("</li>")[0]  # cut to one line, the whole of it one click away
    assert "line 39: one mug, blue, 4.90 €" in long_step.split("</details>")[0]
    assert "192 in" in html and "34 out" in html and "first token 0.42 s" in html and "1.84 s total" in html
    assert "gpt-4o-mini" in html
    assert 'data-status="error"' in html and "The model service could not be reached." in html
    read = TranscriptRead.objects.get()
    assert (read.reader, read.reader_username, read.conversation, read.conversation_number) == (
        reviewer,
        "reviewer",
        reviewed,
        reviewed.pk,
    )
    assert (read.owner_username, read.messages_shown) == ("alice", True)
    assert read.read_at is not None


def test_the_conversation_permission_alone_shows_no_message_and_is_recorded_as_such(client, reviewed):
    client.force_login(make_staff("reviewer", "view_conversation"))

    page = client.get(transcript_url(reviewed))

    assert page.status_code == 200
    assert b"refund order 31" not in page.content and b"no-message-permission" in page.content
    assert TranscriptRead.objects.get().messages_shown is False


def test_the_record_of_reads_is_for_superusers_only_and_nobody_deletes_it(client, reviewed):
    client.force_login(make_staff("reviewer", "view_conversation", "view_message", "view_transcriptread"))
    client.get(transcript_url(reviewed))
    read = TranscriptRead.objects.get()
    assert client.get(reverse(READS)).status_code == 403

    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    listing = client.get(reverse(READS))
    assert listing.status_code == 200 and b"reviewer" in listing.content
    assert client.get(reverse(READS), {"q": "reviewer"}).context["cl"].result_count == 1
    assert client.post(reverse("admin:review_transcriptread_delete", args=[read.pk])).status_code == 403
    bulk = client.post(reverse(READS), {"action": "delete_selected", "_selected_action": [read.pk], "post": "yes"})
    assert bulk.status_code in (200, 302) and TranscriptRead.objects.filter(pk=read.pk).exists()
    assert client.get(reverse("admin:review_transcriptread_add")).status_code == 403
    reviewed.delete()
    assert TranscriptRead.objects.filter(pk=read.pk, conversation=None, conversation_number=read.conversation_number)


def test_a_users_page_links_to_their_conversations(client, reviewed, alice):
    client.force_login(make_staff("reviewer", "view_conversation", "view_user"))

    user_page = client.get(reverse("admin:auth_user_change", args=[alice.pk]))

    link = f"{reverse(CHANGELIST)}?owner={alice.pk}"
    assert link in user_page.content.decode()
    Conversation.objects.create(owner=make_user("bob"), title="Bob's")
    assert found(client, owner=alice.pk) == [reviewed.pk]


# ------------------------------------------------------------------ finding what to review


@pytest.fixture
def three(reviewed, alice) -> dict[str, Conversation]:
    """The reviewed conversation, a quiet one by the History assistant, and a stopped one by bob."""
    quiet = Conversation.objects.create(owner=alice, title="Earlier chats", assistant_id="history")
    add_turn(
        quiet,
        "What did I ask about counting?",
        {
            "content": "You asked to count to 50.",
            "model": "offline-demo",
            "tool_steps": [
                {"call_id": "h1", "name": "search_my_conversations", "args": {"query": "count"}, "output": []}
            ],
        },
    )
    stopped = Conversation.objects.create(owner=make_user("bob"), title="Long count", assistant_id="arithmetic")
    add_turn(stopped, "count to 500", {"content": "1, 2, 3", "status": "cancelled", "model": "offline-demo"})
    return {"reviewed": reviewed, "quiet": quiet, "stopped": stopped}


def test_filters_find_conversations_by_tool_status_assistant_and_model(client, three):
    client.force_login(make_staff("reviewer", "view_conversation", "view_message"))
    ids = {name: c.pk for name, c in three.items()}

    assert found(client, tool="refund") == [ids["reviewed"]]
    assert found(client, tool="search_my_conversations") == [ids["quiet"]]
    assert found(client, tool_error="yes") == [ids["reviewed"]]
    assert found(client, answer_status="error") == [ids["reviewed"]]
    assert found(client, answer_status="cancelled") == [ids["stopped"]]
    assert found(client, answer_status="interrupted") == []
    assert found(client, assistant="history") == [ids["quiet"]]
    assert sorted(found(client, assistant="arithmetic")) == sorted([ids["reviewed"], ids["stopped"]])
    assert sorted(found(client, model="offline-demo")) == sorted([ids["quiet"], ids["stopped"]])
    listing = client.get(reverse(CHANGELIST)).content.decode()
    assert "?tool=refund" in listing and "?assistant=history" in listing and "?answer_status=error" in listing


def test_search_finds_message_text_tool_names_and_arguments(client, three):
    client.force_login(make_staff("reviewer", "view_conversation", "view_message"))
    ids = {name: c.pk for name, c in three.items()}

    assert found(client, q="search_my_conversations") == [ids["quiet"]]
    assert found(client, q="divide") == [ids["reviewed"]]
    assert found(client, q="Zürich") == [ids["reviewed"]]  # an argument, stored with JSON escapes on SQLite
    assert found(client, q='"asked to count"') == [ids["quiet"]]  # answer text, a quoted phrase
    assert found(client, q="bob") == [ids["stopped"]]  # the owner


def test_a_staff_search_past_the_bounds_finds_nothing_and_says_why_without_building_a_query(
    client, three, django_assert_max_num_queries
):
    client.force_login(make_staff("reviewer", "view_conversation", "view_message"))
    huge = " ".join(f"word{n}" for n in range(2000))

    with django_assert_max_num_queries(12):  # the page's own queries; none per word
        page = client.get(reverse(CHANGELIST), {"q": huge})

    assert page.status_code == 200
    assert SEARCH_TOO_LONG.format(words=12, chars=200) in page.content.decode()
    assert found(client, q=" ".join(["divide"] * 13)) == []


def test_without_view_message_search_reaches_neither_messages_nor_tool_steps(client, three):
    client.force_login(make_staff("reviewer", "view_conversation"))

    assert found(client, q="divide") == []
    assert found(client, q="Zürich") == []
    assert found(client, q="Earlier") == [three["quiet"].pk]


# ------------------------------------------------------------------ the transcript is safe to read


def test_model_output_is_shown_as_text_never_run_and_links_to_javascript_are_dropped(client, reviewed):
    client.force_login(make_staff("reviewer", "view_conversation", "view_message"))

    html = client.get(transcript_url(reviewed)).content.decode()

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert('answer')&lt;/script&gt;" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert" in html
    assert "[click me](javascript:alert" in html.replace("&#x27;", "'")  # left as text, not a link
    assert 'href="javascript' not in html.lower()
    assert '<a href="https://example.org/docs" rel="noopener noreferrer nofollow">docs</a>' in html
    assert "tracker.example/p.png" in html and 'src="https://tracker.example' not in html
    assert "<strong>Total</strong>" in html and "<code>20</code>" in html
    assert "&lt;script&gt;alert(&#x27;args&#x27;)&lt;/script&gt;" in html  # tool arguments are text too


# ------------------------------------------------------------------ usage at a glance


@pytest.fixture
def two_days_two_users(alice) -> dict:
    """Answers of alice and bob over 1-2 March, plus answers outside the period or still streaming."""
    bob = make_user("bob")
    spec = [  # owner, assistant, day, model, input, output, status, first_ms, total_ms
        (alice, "arithmetic", "2026-03-01", "gpt-4o-mini", 100, 20, "completed", 300, 900),
        (alice, "arithmetic", "2026-03-01", "gpt-4o-mini", 250, 40, "error", 1200, 5000),
        (alice, "history", "2026-03-02", "offline-demo", 80, 15, "completed", None, None),
        (bob, "arithmetic", "2026-03-01", "gpt-4o-mini", 60, 10, "cancelled", 200, 400),
        (bob, "arithmetic", "2026-03-02", "gpt-4o-mini", 500, 90, "completed", 2500, 9000),
        (bob, "history", "2026-03-02", "offline-demo", 30, 5, "interrupted", 150, 20000),
    ]
    answers = []
    for owner, assistant, day, model, tokens_in, tokens_out, status, first_ms, total_ms in spec:
        conversation = Conversation.objects.create(owner=owner, assistant_id=assistant, title=f"{owner} {day}")
        usage = {"input_tokens": tokens_in, "output_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
        fields = {"model": model, "usage": usage, "status": status, "first_token_ms": first_ms, "duration_ms": total_ms}
        answers.append(add_turn(conversation, "q", fields, when=at(day, 10 + len(answers))))
    outside = Conversation.objects.create(owner=bob, assistant_id="arithmetic")
    add_turn(outside, "q", {"usage": {"input_tokens": 9999, "output_tokens": 9999}}, when=at("2026-03-03"))
    add_turn(outside, "q", {"usage": {"input_tokens": 7777, "output_tokens": 7777}}, when=at("2026-02-28", 23))
    streaming = Conversation.objects.create(owner=alice, assistant_id="arithmetic")
    add_turn(streaming, "q", {"status": "generating", "usage": {"input_tokens": 5555}}, when=at("2026-03-02"))
    return {"alice": alice, "bob": bob, "answers": answers}


def expected_sums(answers: list[Message], *, day: str | None = None, user: str | None = None) -> dict[str, int]:
    """The figures summed here, in Python, from the stored answers (of one day or user)."""
    chosen = [
        a
        for a in answers
        if day in (None, a.created.date().isoformat()) and user in (None, a.conversation.owner.username)
    ]
    return {
        "answers": len(chosen),
        "input_tokens": sum(a.usage["input_tokens"] for a in chosen),
        "output_tokens": sum(a.usage["output_tokens"] for a in chosen),
        "errors": sum(a.status == "error" for a in chosen),
        "stopped": sum(a.status == "cancelled" for a in chosen),
        "interrupted": sum(a.status == "interrupted" for a in chosen),
    }


def figures(row) -> dict[str, int]:
    keys = ("answers", "input_tokens", "output_tokens", "errors", "stopped", "interrupted")
    return {key: getattr(row, key) for key in keys}


def test_the_usage_page_sums_the_stored_usage_per_day_user_and_model_and_its_csv_matches(client, two_days_two_users):
    client.force_login(make_staff("reviewer", "view_conversation"))
    stored = Message.objects.select_related("conversation__owner")
    answers = [stored.get(pk=a.pk) for a in two_days_two_users["answers"]]
    period = {"start": "2026-03-01", "end": "2026-03-02"}

    page = client.get(reverse(USAGE), period)

    assert page.status_code == 200
    report = page.context["report"]
    assert figures(report.totals) == expected_sums(answers)
    assert figures(report.totals) == {
        "answers": 6,
        "input_tokens": 1020,
        "output_tokens": 180,
        "errors": 1,
        "stopped": 1,
        "interrupted": 1,
    }
    assert [day for day, _ in report.days] == [dt.date(2026, 3, 1), dt.date(2026, 3, 2)]
    for day, row in report.days:
        assert figures(row) == expected_sums(answers, day=day.isoformat())
    assert {row.label: figures(row) for row in report.users} == {
        "alice": expected_sums(answers, user="alice"),
        "bob": expected_sums(answers, user="bob"),
    }
    assert {row.full_label: row.total_tokens for row in report.assistants} == {
        "Arithmetic · gpt-4o-mini": 100 + 20 + 250 + 40 + 60 + 10 + 500 + 90,
        "History · offline-demo": 80 + 15 + 30 + 5,
    }
    assert round(report.totals.error_rate, 4) == round(1 / 6, 4)
    assert [a.first_token_ms for a in report.slowest_first_token] == [2500, 1200, 300, 200, 150]
    assert [a.duration_ms for a in report.slowest_total][:2] == [20000, 9000]
    html = page.content.decode()
    assert "1,020" in html and "180" in html and "16.7%" in html and "<svg" in html

    download = client.get(reverse(USAGE), {**period, "format": "csv"})
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert 'filename="usage-2026-03-01-2026-03-02.csv"' in download["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(download.content.decode())))
    assert tuple(rows[0].keys()) == CSV_HEADER
    keys = ("answers", "input_tokens", "output_tokens", "errors", "stopped", "interrupted")
    assert {key: sum(int(r[key]) for r in rows) for key in keys} == figures(report.totals)
    for user in ("alice", "bob"):
        mine = [r for r in rows if r["user"] == user]
        assert {key: sum(int(r[key]) for r in mine) for key in keys} == expected_sums(answers, user=user)
    for day in ("2026-03-01", "2026-03-02"):
        that_day = [r for r in rows if r["day"] == day]
        assert {key: sum(int(r[key]) for r in that_day) for key in keys} == expected_sums(answers, day=day)
    assert all(int(r["total_tokens"]) == int(r["input_tokens"]) + int(r["output_tokens"]) for r in rows)


def test_the_usage_page_defaults_to_the_last_thirty_days_and_refuses_a_backwards_period(client, alice):
    client.force_login(make_staff("reviewer", "view_conversation"))

    default = client.get(reverse(USAGE)).context["report"]
    assert (default.end - default.start).days == 29 and len(default.days) == 30
    backwards = client.get(reverse(USAGE), {"start": "2026-03-05", "end": "2026-03-01"})
    assert backwards.status_code == 400 and PERIOD_BACKWARDS in backwards.content.decode()
    assert backwards.context["report"] is None


def test_the_admin_index_links_to_the_usage_page_for_reviewers(client):
    client.force_login(make_staff("reviewer", "view_conversation"))

    index = client.get(reverse("admin:index")).content.decode()

    assert reverse(USAGE) in index


def test_chart_numbers_read_well():
    assert [compact_number(n) for n in (0, 999, 1000, 1234, 2_500_000)] == ["0", "999", "1k", "1.2k", "2.5M"]
    assert [nice_ceiling(n) for n in (0, 7, 12, 180, 2600)] == [1, 10, 20, 200, 5000]


# ------------------------------------------------------------------ the timings runs record


def test_the_transcript_notes_the_first_answer_text_or_tool_call():
    transcript = RunTranscript()
    assert transcript.first_output is None
    transcript.add_answer("")
    assert transcript.first_output is None
    transcript.call_id(0, "call_a")
    first = transcript.first_output
    assert first is not None
    transcript.add_answer("later")
    assert transcript.first_output == first


def test_run_finish_stores_the_time_to_first_output_and_the_total(conversation):
    message = Message.objects.create(conversation=conversation, role="assistant", status="generating", worker="w")
    report = RunReport(run_id="r", model="m", status="completed", content="ok")
    report.started, report.first_output, report.finished = 100.0, 100.25, 101.5

    assert run_finish(message_id=message.pk, report=report, worker="w")

    message.refresh_from_db()
    assert (message.first_token_ms, message.duration_ms) == (250, 1500)


@pytest.mark.asyncio
async def test_a_paced_run_reports_its_first_output_between_its_start_and_its_end():
    run = offline_run("What is 10 + 10?", pace=200)
    await collect(run)

    report = run.report
    assert report.first_output is not None and report.finished is not None
    assert report.started < report.first_output < report.finished
    assert report.finished - report.first_output > 0.02  # the answer kept streaming after the first call


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_answer_from_the_socket_is_stored_with_its_timings(tabs, conversation, paced):
    paced(200)
    tab = await tabs()
    started = time.monotonic()
    await tab.ask("What is 10 + 10?")
    await tab.run_events_until_done()
    elapsed_ms = (time.monotonic() - started) * 1000

    answer = (await wait_until_answered(conversation))[-1]

    assert answer.first_token_ms is not None and answer.duration_ms is not None
    assert 0 <= answer.first_token_ms < answer.duration_ms <= elapsed_ms + 50


def test_the_transcript_marks_versions_and_what_the_owners_tabs_no_longer_show(client, alice):
    from conversations.services import answer_regenerate, branch_select

    conversation = Conversation.objects.create(owner=alice, title="Capitals")
    question = message_append(conversation, role="user", content="Capital of France?")
    first = message_append(conversation, role="assistant", content="Paris.")
    regenerated = answer_regenerate(conversation=conversation, client_id="r1", run_id="r1", model="m", worker="w")
    Message.objects.filter(pk=regenerated.assistant_message.pk).update(status="completed", content="Paris, France.")
    branch_select(conversation=conversation, message_id=first.pk)  # the owner went back to the first answer
    client.force_login(make_staff("reviewer", "view_conversation", "view_message"))

    html = client.get(transcript_url(conversation)).content.decode()

    assert html.count('data-testid="turn-version"') == 2
    assert "answer version 1 of 2" in html and "answer version 2 of 2" in html
    off = html[html.index(f'id="m-{regenerated.assistant_message.pk}"') :].split("</li>")[0]
    assert 'data-testid="turn-off-branch"' in off and "turn--off-branch" in html
    shown = html[html.index(f'id="m-{first.pk}"') :].split("</li>")[0]
    assert 'data-testid="turn-off-branch"' not in shown
    assert 'data-testid="turn-version"' not in html[html.index(f'id="m-{question.pk}"') :].split("</li>")[0]


def test_the_usage_page_shows_spending_against_budgets_most_spent_first(client, alice, bob, settings):
    settings.QUOTA_TOKENS_PER_DAY, settings.QUOTA_TOKENS_PER_MONTH = 0, 0
    team = Group.objects.create(name="team")
    bob.groups.add(team)
    Budget.objects.create(group=team, tokens_per_month=1000)
    Budget.objects.create(user=alice, tokens_per_day=400)
    carol = make_user("carol")  # no budget: not listed
    for owner, tokens in ((alice, 100), (bob, 900), (carol, 5000)):
        conversation = Conversation.objects.create(owner=owner)
        Message.objects.create(
            conversation=conversation, role="assistant", usage={"input_tokens": tokens, "output_tokens": 0}
        )
    client.force_login(make_staff("reviewer", "view_conversation"))

    page = client.get(reverse(USAGE))

    budgets = page.context["budgets"]
    assert [(b.username, b.day_used, b.day_limit, b.month_used, b.month_limit) for b in budgets] == [
        ("bob", 900, 0, 900, 1000),
        ("alice", 100, 400, 100, 0),
    ]
    assert [b.percent for b in budgets] == [90, 25]
    html = page.content.decode()
    assert 'data-testid="budgets-table"' in html and "90 %" in html and "carol" not in html.split("budgets-table")[1]
