"""Realistic stored conversations for the staff review pages: the browser test and the screenshots.

`seed_review_demo()` stores, as if the product had run for a month: four users' conversations with
the Arithmetic, History and Refunds assistants, tool steps (one failing), an approval, a stopped, an
interrupted and a failed answer, with usage and timings; and a superuser to review them. Run it in
a deployment with `manage.py shell -c "from tests.e2e.review_seed import seed_review_demo; seed_review_demo()"`.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from conversations.models import Conversation, Message, ToolApproval
from tests.messages import message_append

REVIEWER = "reviewer"
PASSWORD = "a-long-test-password-1"
FEATURED_TITLE = "What is (3 + 4) * 2 ^ 3?"
USERS = ("alice", "bob", "carol", "dave")
KINDS = (  # assistant, model, question, answer, tool steps
    ("arithmetic", "gpt-4o-mini", "What is 12 * 7?", "12 × 7 = **84**.", [("multiply", {"x": 12, "y": 7}, 84)]),
    (
        "arithmetic",
        "gpt-4o-mini",
        "What is 2 ^ 10 - 24?",
        "2¹⁰ − 24 = **1000**.",
        [("exponentiate", {"x": 2, "y": 10}, 1024)],
    ),
    (
        "history",
        "gpt-4o",
        "What did I ask about refunds?",
        "You asked about order 31 last week.",
        [("search_my_conversations", {"query": "refund"}, "3 matches")],
    ),
    ("refunds", "gpt-4o", "Where is my refund for order 12?", "Order 12 was refunded on Monday.", []),
    (
        "arithmetic",
        "offline-demo",
        "count to 20",
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20",
        [],
    ),
)


def seed_review_demo(*, days: int = 30, seed: int = 7) -> Conversation:
    """Store the demo conversations (ending today); the featured one, for the transcript screenshot."""
    rng = random.Random(seed)
    users = {name: User.objects.get_or_create(username=name)[0] for name in USERS}
    reviewer, _ = User.objects.get_or_create(username=REVIEWER, defaults={"is_staff": True, "is_superuser": True})
    reviewer.set_password(PASSWORD)
    reviewer.save()
    today = timezone.localdate()
    for offset in range(days - 1, -1, -1):
        day = today - dt.timedelta(days=offset)
        for _ in range(rng.randint(1, 5) if day.weekday() < 5 else rng.randint(0, 2)):
            _seed_everyday(rng, rng.choice(list(users.values())), _moment(rng, day))
    return _seed_featured(users["alice"], _moment(rng, today, hour=9))


def _moment(rng: random.Random, day: dt.date, hour: int | None = None) -> dt.datetime:
    """A time on `day` (at `hour`, or in working hours), never in the future."""
    hour = hour if hour is not None else rng.randint(8, 19)
    moment = dt.datetime.combine(day, dt.time(hour, rng.randint(0, 59)), tzinfo=timezone.get_current_timezone())
    return min(moment, timezone.now() - dt.timedelta(minutes=rng.randint(10, 50)))


def _seed_everyday(rng: random.Random, owner: User, when: dt.datetime) -> None:
    assistant, model, question, answer, steps = rng.choice(KINDS)
    status = rng.choices(["completed", "error", "cancelled", "interrupted"], weights=[40, 2, 2, 2])[0]
    conversation = _conversation(owner, question, assistant, when)
    tool_steps = [
        {"call_id": f"call_{i}", "name": name, "args": args, "output": output}
        for i, (name, args, output) in enumerate(steps)
    ]
    tokens_in = rng.randint(150, 900) * (3 if model == "gpt-4o" else 1)
    _turn(
        conversation,
        question,
        when,
        content=answer if status == "completed" else answer[: len(answer) // 2],
        status=status,
        model=model,
        tool_steps=tool_steps,
        usage=(tokens_in, rng.randint(10, 140)),
        timing=_timing(rng, slow=model == "gpt-4o"),
        error={"error": "The model service could not be reached.", "interrupted": "The server stopped."}.get(
            status, ""
        ),
    )


def _timing(rng: random.Random, *, slow: bool) -> tuple[int, int]:
    """Time to first token and total, in milliseconds: the first within the total."""
    first = rng.randint(250, 3200 if slow else 1400)
    return first, first + rng.randint(500, 6000)


def _seed_featured(alice: User, when: dt.datetime) -> Conversation:
    """Four turns: parallel tools with one failing, a refund approved by alice, a stop, an error."""
    conversation = _conversation(alice, FEATURED_TITLE, "refunds", when)
    _turn(
        conversation,
        "What is (3 + 4) * 2 ^ 3? And what's seven times 8?",
        when,
        content=(
            "**(3 + 4) × 2³ = 56.**\n\n1. `add(3, 4)` gives 7 and `exponentiate(2, 3)` gives 8, in parallel;\n"
            "2. then `multiply(7, 8)` gives **56**.\n\nSeven times 8 is 56 too."
        ),
        model="gpt-4o-mini",
        tool_steps=[
            {"call_id": "call_a", "name": "add", "args": {"x": 3, "y": 4}, "output": 7},
            {"call_id": "call_b", "name": "exponentiate", "args": {"x": 2, "y": 3}, "output": 8},
            {
                "call_id": "call_c",
                "name": "multiply",
                "args": {"x": "seven", "y": 8},
                "error": "Invalid arguments: x: Input should be a valid number, unable to parse string as a number",
            },
            {"call_id": "call_d", "name": "multiply", "args": {"x": 7, "y": 8}, "output": 56},
        ],
        usage=(412, 96),
        timing=(380, 2140),
    )
    later = when + dt.timedelta(minutes=3)
    refund = _turn(
        conversation,
        "Refund order 31, it arrived broken. <b>Urgent</b>",
        later,
        content=(
            "Done: order **31** is refunded (14.90 €). You'll see it on your card in 3–5 days.\n\n"
            "See [your orders](https://shop.example/orders) for the receipt."
        ),
        model="gpt-4o",
        tool_steps=[
            {
                "call_id": "call_e",
                "name": "refund",
                "args": {"order": 31},
                "output": "refunded order 31",
                "approval": {"approval_id": "demo-approval-31", "decision": "approved", "by": "alice"},
            }
        ],
        usage=(1204, 58),
        timing=(910, 14800),
    )
    ToolApproval.objects.create(
        conversation=conversation,
        message=refund,
        run_id=f"demo-{refund.pk}",
        approval_id="demo-approval-31",
        call_id="call_e",
        tool="refund",
        arguments={"order": 31},
        decision=ToolApproval.Decision.APPROVED,
        decided_by=alice,
        decided_at=later + dt.timedelta(seconds=12),
    )
    _turn(
        conversation,
        "Now count to 500",
        later + dt.timedelta(minutes=1),
        content="1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21",
        status="cancelled",
        model="gpt-4o-mini",
        usage=(530, 61),
        timing=(290, 2600),
    )
    _turn(
        conversation,
        "Sorry, go on from 21",
        later + dt.timedelta(minutes=2),
        status="error",
        error="The model service answered 429 Too Many Requests (Retry-After: 20 s).",
        model="gpt-4o-mini",
        usage=(0, 0),
        timing=(None, 1210),
    )
    return conversation


def _conversation(owner: User, title: str, assistant_id: str, when: dt.datetime) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title[:60], assistant_id=assistant_id)
    Conversation.objects.filter(pk=conversation.pk).update(created=when, updated=when)
    return conversation


def _turn(
    conversation: Conversation,
    question: str,
    when: dt.datetime,
    *,
    content: str = "",
    status: str = "completed",
    model: str,
    tool_steps: list[dict[str, Any]] | None = None,
    usage: tuple[int, int],
    timing: tuple[int | None, int],
    error: str = "",
) -> Message:
    """Store a question and its answer as a run would have; the answer."""
    asked = message_append(conversation, role="user", content=question)
    first_ms, total_ms = timing
    answer = message_append(
        conversation,
        role="assistant",
        content=content,
        status=status,
        model=model,
        tool_steps=tool_steps or [],
        usage={"input_tokens": usage[0], "output_tokens": usage[1], "total_tokens": sum(usage)},
        error=error,
        started=when,
        finished=when + dt.timedelta(milliseconds=total_ms),
        first_token_ms=first_ms,
        duration_ms=total_ms,
    )
    Message.objects.filter(pk=asked.pk).update(created=when)
    Message.objects.filter(pk=answer.pk).update(created=when + dt.timedelta(milliseconds=5))
    Conversation.objects.filter(pk=conversation.pk).update(updated=when)
    return answer


HOSTILE_TITLE = "Show me some HTML"
HOSTILE_ANSWER = (
    "<script>alert('script')</script> <img src=x onerror=alert('img')> "
    "[a link](javascript:alert('link')) ![pixel](http://127.0.0.1:9/pixel.png)"
)


def seed_hostile() -> Conversation:
    """A conversation whose answer and tool step hold markup and script: the page must show them as text."""
    bob = User.objects.get_or_create(username="bob")[0]
    now = timezone.now()
    conversation = _conversation(bob, HOSTILE_TITLE, "arithmetic", now)
    _turn(
        conversation,
        "<img src=x onerror=alert('question')>",
        now,
        content=HOSTILE_ANSWER,
        model="gpt-4o-mini",
        tool_steps=[
            {"call_id": "x", "name": "add", "args": {"x": "<script>alert('args')</script>"}, "error": "<b>no</b>"}
        ],
        usage=(10, 10),
        timing=(100, 200),
    )
    return conversation
