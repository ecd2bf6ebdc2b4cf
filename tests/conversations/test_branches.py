"""Regenerate and edit: earlier versions are kept, every tab shows the same branch live, and the model
is given only the branch on screen."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from agent_runtime.llm import ModelConfig
from conversations import protocol
from conversations.models import Conversation, Message
from conversations.sending import BAD_BRANCH, BRANCH_BUSY, NOT_EDITABLE
from conversations.services import NOTHING_TO_REGENERATE
from tests.fake_openai import StreamResponse, content_chunks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def model(settings, fake_openai):
    settings.AGENT_MODEL = ModelConfig(api_key="test", base_url=fake_openai.base_url, max_retries=0)
    return fake_openai


def answers(fake_openai, *texts: str) -> None:
    fake_openai.enqueue(*(StreamResponse(content_chunks([text])) for text in texts))


def said(request: dict) -> list[tuple[str, str]]:
    """The conversation the model was given: (role, content), without the instructions."""
    return [(m["role"], m["content"]) for m in request["messages"] if m["role"] != "system"]


async def next_snapshot(tab) -> dict:
    frames = await tab.receive_until(lambda f: f["type"] == "snapshot")
    return frames[-1]


def shown(snapshot: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in snapshot["messages"]]


def new_answer_shown(snapshot: dict, text: str) -> dict:
    """The answer a regenerate put on screen, as the snapshot after `branch.changed` shows it: the last
    message of the branch, the newest of its two versions.

    A tab reads that snapshot when its consumer gets to the branch change, while the run goes on: on a
    busy machine the run may have stored its answer by then. So the new answer is being written (with
    at most the start of `text` stored so far) or written; never the earlier version.
    """
    answer = snapshot["messages"][-1]
    assert answer["role"] == "assistant" and len(answer["versions"]) == 2 and answer["versions"][-1] == answer["id"]
    if answer["status"] == "generating":
        assert text.startswith(answer["content"]), answer
    else:
        assert (answer["status"], answer["content"]) == ("completed", text), answer
    return answer


async def two_turns(tab, fake_openai) -> None:
    answers(fake_openai, "Paris.", "About 2.1 million.")
    await tab.ask("Capital of France?", client_id="q1")
    await tab.run_events_until_done()
    await tab.ask("How many people live there?", client_id="q2")
    await tab.run_events_until_done()


async def test_regenerate_keeps_the_earlier_answer_and_both_tabs_follow_the_new_one(model, tabs):
    first, second = await tabs(), await tabs()
    await two_turns(first, model)
    await second.run_events_until_done()
    await second.run_events_until_done()
    answers(model, "Roughly 2.1 million people.")

    await first.send({"type": "regenerate", "client_id": "r1"})

    for tab in (first, second):
        snapshot = await next_snapshot(tab)
        assert shown(snapshot)[:3] == [
            ("user", "Capital of France?"),
            ("assistant", "Paris."),
            ("user", "How many people live there?"),
        ]
        answer = new_answer_shown(snapshot, "Roughly 2.1 million people.")
        assert answer["client_id"] == "r1"
        # The run's events reach the tab after that snapshot, whatever the run had done by then.
        events = await tab.run_events_until_done()
        assert events[0]["type"] == "run_started" and {e["run_id"] for e in events} == {answer["run_id"]}
        assert "".join(e["text"] for e in events if e["type"] == "token") == "Roughly 2.1 million people."
    # The model was asked the same question again, with the branch before it: not the earlier answer.
    assert said(model.requests[-1]) == [
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "How many people live there?"),
    ]
    stored = await database_sync_to_async(list)(Message.objects.filter(role="assistant").values_list("content"))
    assert ("About 2.1 million.",) in stored and ("Roughly 2.1 million people.",) in stored


async def test_edit_starts_a_new_branch_and_the_model_gets_only_that_branch(model, tabs):
    first, second = await tabs(), await tabs()
    await two_turns(first, model)
    snapshot = await next_snapshot_after_sync(first)
    question_one = snapshot["messages"][0]["id"]
    answers(model, "Rome.")

    await second.send({"type": "edit", "message_id": question_one, "content": "Capital of Italy?", "client_id": "e1"})

    for tab in (first, second):
        snapshot = await next_snapshot(tab)
        assert shown(snapshot)[0] == ("user", "Capital of Italy?")
        assert snapshot["messages"][0]["versions"] == [question_one, snapshot["messages"][0]["id"]]
        assert len(snapshot["messages"]) == 2  # the earlier branch's later turns are not on screen
        await tab.run_events_until_done()
    assert said(model.requests[-1]) == [("user", "Capital of Italy?")]

    # Going back to the first version shows its whole branch again, in both tabs.
    await first.send({"type": "branch", "message_id": question_one})
    for tab in (first, second):
        assert shown(await next_snapshot(tab)) == [
            ("user", "Capital of France?"),
            ("assistant", "Paris."),
            ("user", "How many people live there?"),
            ("assistant", "About 2.1 million."),
        ]

    # A message sent now follows the branch on screen: the model hears that branch only.
    answers(model, "The Eiffel Tower.")
    await first.ask("Its most famous sight?", client_id="q3")
    await first.run_events_until_done()
    assert [content for _role, content in said(model.requests[-1])] == [
        "Capital of France?",
        "Paris.",
        "How many people live there?",
        "About 2.1 million.",
        "Its most famous sight?",
    ]


async def next_snapshot_after_sync(tab) -> dict:
    await tab.send({"type": "sync"})
    return await next_snapshot(tab)


async def test_regenerate_after_an_error_answers_again(model, tabs, fake_openai):
    from tests.fake_openai import ErrorResponse

    tab = await tabs()
    model.enqueue(ErrorResponse(status=500, message="upstream broke"))
    await tab.ask("Capital of France?", client_id="q1")
    events = await tab.run_events_until_done()
    assert events[-1]["status"] == "error"
    answers(model, "Paris.")

    await tab.send({"type": "regenerate", "client_id": "r1"})

    snapshot = await next_snapshot(tab)
    assert snapshot["messages"][0]["status"] == "completed" and len(snapshot["messages"]) == 2
    new_answer_shown(snapshot, "Paris.")
    events = await tab.run_events_until_done()
    assert events[-1]["status"] == "completed"
    assert said(model.requests[-1]) == [("user", "Capital of France?")]


async def test_a_regenerate_sent_twice_starts_one_run(model, tabs):
    tab = await tabs()
    answers(model, "Paris.", "Paris, France.")
    await tab.ask("Capital of France?", client_id="q1")
    await tab.run_events_until_done()

    await tab.send({"type": "regenerate", "client_id": "r1"})
    await tab.run_events_until_done()
    await tab.send({"type": "regenerate", "client_id": "r1"})
    snapshot = await next_snapshot_after_sync(tab)

    assert len(snapshot["messages"][-1]["versions"]) == 2
    assert await database_sync_to_async(Message.objects.filter(role="assistant").count)() == 2


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ({"type": "regenerate", "client_id": "r1"}, NOTHING_TO_REGENERATE),
        ({"type": "regenerate"}, None),
        ({"type": "edit", "message_id": "1", "content": "x", "client_id": "e1"}, None),
        ({"type": "edit", "message_id": 10**9, "content": "x", "client_id": "e1"}, NOT_EDITABLE),
        ({"type": "edit", "message_id": 1, "content": "bad \ud800", "client_id": "e1"}, None),
        ({"type": "branch", "message_id": 10**9}, BAD_BRANCH),
        ({"type": "branch", "message_id": None}, BAD_BRANCH),
    ],
)
async def test_bad_branching_frames_get_a_clear_error_and_the_socket_stays_open(model, tabs, frame, message):
    tab = await tabs()

    await tab.send(frame)

    error = await tab.receive()
    assert error["type"] == "error" and error["code"] == protocol.BAD_REQUEST
    if message is not None:
        assert error["message"] == message
    await tab.send({"type": "sync"})
    assert (await tab.receive())["type"] == "snapshot"


async def test_a_message_of_another_conversation_cannot_be_edited_or_chosen(model, tabs, alice):
    other = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    foreign = await database_sync_to_async(Message.objects.create)(conversation=other, role="user", content="x")
    tab = await tabs()

    await tab.send({"type": "edit", "message_id": foreign.pk, "content": "y", "client_id": "e1"})
    assert (await tab.receive())["message"] == NOT_EDITABLE
    await tab.send({"type": "branch", "message_id": foreign.pk})
    assert (await tab.receive())["message"] == BAD_BRANCH


async def test_choosing_a_version_while_an_answer_is_written_is_busy(tabs, paced):
    paced(20)
    tab = await tabs()
    await tab.ask("What is 2 + 2?", client_id="q1")
    started = await tab.receive_until(lambda f: f["type"] == "run_started")

    await tab.send({"type": "branch", "message_id": started[-1]["user_message"]["id"]})
    error = await tab.receive_until(lambda f: f["type"] == "error" and "seq" not in f)

    assert error[-1]["code"] == protocol.BUSY and error[-1]["message"] == BRANCH_BUSY
    await tab.send({"type": "stop"})
    await tab.run_events_until_done()


async def test_existing_conversations_are_one_branch_after_the_migration(transactional_db, alice):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def migrate(target):
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([("conversations", target)])
        return executor.loader.project_state([("conversations", target)]).apps

    def check():
        old = migrate("0007_message_role_created_index")
        OldConversation = old.get_model("conversations", "Conversation")
        OldMessage = old.get_model("conversations", "Message")
        conversation = OldConversation.objects.create(owner_id=alice.pk, assistant_id="arithmetic")
        ids = [
            OldMessage.objects.create(conversation=conversation, role=role, content=str(n)).pk
            for n, role in enumerate(["user", "assistant", "user", "assistant"])
        ]
        migrate("0008_message_tree")
        latest = MigrationExecutor(connection).loader.graph.leaf_nodes("conversations")[0][1]
        migrate(latest)  # the models below are today's
        from conversations.selectors import message_list

        migrated = Conversation.objects.get(pk=conversation.pk)
        return ids, migrated.leaf_id, [(m.pk, m.parent_id) for m in message_list(conversation=migrated)]

    ids, leaf, branch = await database_sync_to_async(check)()

    assert leaf == ids[-1]
    assert branch == [(ids[0], None), (ids[1], ids[0]), (ids[2], ids[1]), (ids[3], ids[2])]


# ---- the same over the HTTP API


async def api_post(client, path: str, body: dict):
    return await client.post(path, body, content_type="application/json")


async def test_the_api_regenerates_edits_and_chooses_versions_and_a_tab_follows(model, tabs, api, conversation):
    from tests.support.api import send_message, sse_reader

    tab = await tabs()
    answers(model, "Paris.", "Paris, France.", "Rome.")
    await (await sse_reader(await send_message(api, conversation.pk, "Capital of France?", client_id="q1"))).to_end()
    await tab.run_events_until_done()

    regenerated = await sse_reader(
        await api_post(api, f"/api/conversations/{conversation.pk}/regenerate", {"client_id": "r1"})
    )
    events = [e.data for e in await regenerated.to_end()]
    assert "".join(e["text"] for e in events if e["type"] == "token") == "Paris, France."
    new_answer_shown(await next_snapshot(tab), "Paris, France.")  # the tab shows the new answer

    detail = (await api.get(f"/api/conversations/{conversation.pk}")).json()
    question, answer = detail["messages"]
    assert (answer["content"], len(answer["versions"])) == ("Paris, France.", 2)

    edited = await sse_reader(
        await api_post(api, f"/api/messages/{question['id']}/edit", {"content": "Capital of Italy?", "client_id": "e1"})
    )
    await edited.to_end()
    assert said(model.requests[-1]) == [("user", "Capital of Italy?")]
    assert shown(await next_snapshot(tab))[0] == ("user", "Capital of Italy?")

    chosen = await api_post(api, f"/api/conversations/{conversation.pk}/branch", {"message_id": question["id"]})
    assert chosen.status_code == 200
    assert [(m["content"]) for m in chosen.json()["messages"]] == ["Capital of France?", "Paris, France."]
    assert shown(await next_snapshot(tab))[0] == ("user", "Capital of France?")

    again = await api_post(api, f"/api/conversations/{conversation.pk}/regenerate", {"client_id": "r1"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate"


async def test_the_api_refuses_bad_branching_requests_clearly(model, api, conversation, bob):
    from conversations.models import Message as Stored

    nothing = await api_post(api, f"/api/conversations/{conversation.pk}/regenerate", {"client_id": "r1"})
    assert nothing.status_code == 400 and nothing.json()["error"]["message"] == NOTHING_TO_REGENERATE

    bobs = await database_sync_to_async(Conversation.objects.create)(owner=bob)
    foreign = await database_sync_to_async(Stored.objects.create)(conversation=bobs, role="user", content="x")
    edit = await api_post(api, f"/api/messages/{foreign.pk}/edit", {"content": "y", "client_id": "e1"})
    assert edit.status_code == 404
    branch = await api_post(api, f"/api/conversations/{conversation.pk}/branch", {"message_id": foreign.pk})
    assert branch.status_code == 400 and branch.json()["error"]["message"] == BAD_BRANCH
    bad = await api_post(api, f"/api/conversations/{conversation.pk}/regenerate", {"client_id": "no spaces"})
    assert bad.status_code == 400
