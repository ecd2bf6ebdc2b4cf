"""`manage.py ask`: the agent through the product's path, streamed to the terminal."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from conversations.management.commands.ask import CLI_USERNAME, NO_SUCH_ASSISTANT, NO_SUCH_CONVERSATION, NO_SUCH_USER
from conversations.models import Conversation, Message
from conversations.sending import BAD_SEND
from tests.support.users import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def ask(*args: str) -> str:
    out = StringIO()
    call_command("ask", *args, stdout=out)
    return out.getvalue()


def test_ask_prints_the_tool_call_its_arguments_its_result_and_the_answer(alice):
    output = ask("What is 10 + 10?", "--user", "alice")

    lines = output.splitlines()
    assert lines[0] == '→ add {"x": 10, "y": 10}'
    assert lines[1] == "= 20"
    assert lines[2] == "10 + 10 = 20."
    assert lines[3].startswith("(completed · tools: add · ") and lines[3].endswith(" s)")
    answer = Message.objects.get(conversation__owner=alice, role="assistant")
    assert (answer.status, answer.content) == ("completed", "10 + 10 = 20.")


def test_parallel_calls_name_the_tool_of_each_result(alice):
    output = ask("What is (3 + 4) * 2 ^ 3?", "--user", "alice")

    assert "→ add " in output and "→ exponentiate " in output and "→ multiply " in output
    assert "= 7  (add)" in output and "= 8  (exponentiate)" in output
    assert "\n= 56\n" in output


def test_ask_continues_a_conversation_with_its_history(alice):
    conversation = Conversation.objects.create(owner=alice)
    ask("What is 1 + 1?", "--user", "alice", "--conversation", str(conversation.pk))
    ask("What is 2 + 2?", "--user", "alice", "--conversation", str(conversation.pk))

    assert conversation.messages.count() == 4


def test_without_user_it_asks_as_the_first_superuser_or_else_a_local_cli_user(transactional_db):
    ask("What is 1 + 1?")
    cli = User.objects.get(username=CLI_USERNAME)
    assert not cli.has_usable_password()
    assert Conversation.objects.get().owner == cli

    admin = make_user("admin", is_superuser=True, is_staff=True)
    ask("What is 2 + 2?")
    assert Conversation.objects.filter(owner=admin).count() == 1


def test_refusals_exit_with_an_error(alice, bob):
    bobs = Conversation.objects.create(owner=bob)
    with pytest.raises(CommandError, match=NO_SUCH_USER.format(username="nobody")):
        ask("What is 1 + 1?", "--user", "nobody")
    with pytest.raises(CommandError) as refused:
        ask("What is 1 + 1?", "--user", "alice", "--conversation", str(bobs.pk))
    assert str(refused.value) == NO_SUCH_CONVERSATION.format(username="alice", conversation_id=bobs.pk)
    with pytest.raises(CommandError) as blank:
        ask("   ", "--user", "alice")
    assert str(blank.value) == f"bad_request: {BAD_SEND}"
    assert not Message.objects.exists()


def test_a_run_that_fails_exits_non_zero(alice, settings):
    settings.AGENT_MAX_ITERATIONS = 1
    with pytest.raises(CommandError, match="ended error"):
        ask("What is (3 + 4) * 2 ^ 3?", "--user", "alice")


def test_ask_can_pick_the_assistant_of_a_new_conversation(alice):
    ask("What did I ask about pancakes?", "--user", "alice", "--assistant", "history")

    assert Conversation.objects.get(owner=alice).assistant_id == "history"
    with pytest.raises(CommandError) as refused:
        ask("Hello", "--user", "alice", "--assistant", "nope")
    assert str(refused.value) == NO_SUCH_ASSISTANT.format(assistant_id="nope", known="arithmetic, history")
