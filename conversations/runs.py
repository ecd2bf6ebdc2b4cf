"""One run's life: start the executor, relay its events to every tab, persist, cancel.

A run belongs to the conversation, not to the socket that asked for it: it lives in
the registry of the process executing it until its `done`, whatever happens to the
tabs. Its events go to the run's event log first (so that a late tab on any process
can catch up), then to the conversation's group. While it streams it beats: the
process records that it is alive, with the answer so far, and learns of durable stop
requests made from other processes (the fast path of such a stop is a `run.stop` message to the
conversation's group, which the tabs on the executing process act on).

Whether a message may be sent, and storing it, is `sending.send_message`'s; it calls `run_start`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast
from uuid import uuid4

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections

from agent_runtime import events, stages
from agent_runtime.assistants import Assistant
from agent_runtime.events import Event
from agent_runtime.executor import AgentRun
from agent_runtime.history import HistoryTurn
from agent_runtime.llm import ModelConfig, build_chat_model
from agent_runtime.stream import OUTPUT
from agent_runtime.tool_threads import ToolThreads
from conversations import live, protocol, telemetry, titles
from conversations.approvals import RunApprovals
from conversations.assistants import assistant_get, conversation_model, conversation_model_config
from conversations.event_log import get_event_log
from conversations.models import Conversation, Message
from conversations.process import process_state
from conversations.selectors import message_list, message_payload, run_events_resumed
from conversations.services import (
    BEAT_LOST,
    BEAT_STOP,
    RUN_NOT_STORED,
    RUN_RESTARTED,
    StartedTurn,
    run_finish,
    run_heartbeat,
    run_request_stop,
    run_store_failed,
)

logger = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"
PERSIST_ATTEMPTS = 3
FIRST_OUTPUT_WAIT_SECONDS = 0.05
"""How long a run's model stream waits, at most, for its first words to be sent (`AgentRun`)."""
PUBLISH_RETRY_DELAYS = (0.05, 0.2, 0.5)
"""Seconds before each retry of an event's append or send that failed (a dropped connection reconnects)."""
PUBLISH_RETRY_PAUSE_SECONDS = 5.0
"""After retries gave up, failures are not retried for this long (Redis is down, not hiccuping)."""


@dataclass
class ActiveRun:
    """A run executing in this process."""

    conversation_id: int
    run_id: str
    message_id: int
    agent_run: AgentRun
    user_message: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[None] | None = None
    assistant_key: str = ""
    """Which assistant answers (for the run's log lines and metrics)."""
    title_config: ModelConfig | None = None
    """The model that names the conversation once this answer (to its first question) completes."""
    owner_id: int | None = None
    """Whose budget the run spends: their tabs hear how much is left once it ends."""
    stopped: bool = False
    """Someone stopped it: it ends `cancelled`."""
    interrupted: bool = False
    """The process stopped it (and nobody before): it ends `interrupted`, as when a process dies."""
    lost: bool = False
    """Its message is no longer its own (a sweep took it for dead): it ends without a word or a write."""
    stages: stages.Stages = field(default_factory=stages.Stages)
    """When the send's steps happened, up to the first answer text sent (`agent_runtime.stages`)."""

    def stop(self) -> None:
        """Stop the run at someone's request: it ends `cancelled`."""
        self.stopped = True
        self.agent_run.cancel()

    def lose(self) -> None:
        """Stop the run because a sweep ended it already (told its tabs, stored what it had)."""
        self.lost = True
        self.agent_run.cancel()

    def interrupt(self) -> None:
        """Stop the run because this process stops: it ends `interrupted`, unless it was stopped first."""
        self.interrupted = not self.stopped
        self.agent_run.cancel()


def active_run_get(conversation_id: int) -> ActiveRun | None:
    """The run executing in this process for the conversation, if any."""
    return cast("ActiveRun | None", process_state().runs.get(conversation_id))  # runs starts only ActiveRuns


async def conversation_snapshot(conversation: Conversation) -> dict[str, Any]:
    """The stored messages, and the events so far of the run streaming now (on any process), always
    from its `run_started`: rebuilt from storage when the run's log lost its first events (`head_lost`)."""
    messages = await database_sync_to_async(message_list)(
        conversation=conversation, limit=settings.SNAPSHOT_MAX_MESSAGES
    )
    active_run = None
    last = messages[-1] if messages else None
    if last is not None and last.role == Message.Role.ASSISTANT and last.run_id:
        logged = after_last_gap(await run_events_read(last.run_id))
        # Streaming: its log has no `done` yet, and storage says so too (a log that lost its `done` in a
        # Redis failover belongs to an answer stored since, which `messages` shows whole).
        still_streaming = bool(logged) and logged[-1]["type"] != events.DONE
        if last.status == Message.Status.GENERATING and (still_streaming or not logged):
            active_run = {"run_id": last.run_id, "events": logged}
            if not logged or logged[0]["type"] != events.RUN_STARTED:
                resumed = await database_sync_to_async(run_events_resumed)(answer=last, logged=logged)
                active_run = {"run_id": last.run_id, "events": resumed, "head_lost": True}
    assistant = assistant_get(conversation.assistant_id)
    model = conversation_model(conversation, assistant) if assistant is not None else None
    payloads = [message_payload(m) for m in messages]
    return protocol.snapshot_frame(messages=payloads, active_run=active_run, model=model)


def after_last_gap(logged: list[Event]) -> list[Event]:
    """The run's logged events from the last gap in their `seq` on (all of them when there is none): a
    log that lost events in the middle (a Redis failover) is served as one that lost its head, the
    stored answer standing in for what came before (`run_events_resumed`)."""
    for index in range(len(logged) - 1, 0, -1):
        if logged[index]["seq"] != logged[index - 1]["seq"] + 1:
            return logged[index:]
    return logged


async def run_events_read(run_id: str) -> list[Event]:
    """The run's events so far from its log; empty when the log cannot be read (logged)."""
    try:
        return await get_event_log().read(run_id)
    except Exception:
        telemetry.EVENT_LOG_ERRORS.inc()
        logger.exception("reading the events of run %s failed", run_id)
        return []


async def run_start(
    *,
    conversation: Conversation,
    turn: StartedTurn,
    assistant: type[Assistant],
    history: list[HistoryTurn],
) -> ActiveRun:
    """Start the run answering a stored turn, given the history its question follows (the send path,
    `sending._turn`, reads it in the same database call that stores the turn), and relay its events."""
    assert turn.assistant_message is not None
    user_message = turn.user_message
    if Conversation.owner.is_cached(conversation):
        owner = conversation.owner
    else:
        owner = await database_sync_to_async(lambda: conversation.owner)()
    helper = assistant(user=owner, conversation_id=conversation.pk, run_sync=sync_tool_runner)
    model_config = conversation_model_config(conversation, assistant)  # as `sending._turn` read it
    run_id = turn.assistant_message.run_id
    agent_run = AgentRun(
        llm=build_chat_model(model_config),
        model_name=model_config.display_name,
        user_input=user_message.content,
        history=history,
        run_id=run_id,
        tools=await helper.tools(),
        system_prompt=assistant.system_prompt(),
        needs_approval=helper.needs_approval,
        approvals=RunApprovals(
            conversation_id=conversation.pk,
            message_id=turn.assistant_message.pk,
            run_id=run_id,
            timeout=settings.AGENT_APPROVAL_TIMEOUT,
        ),
        max_iterations=settings.AGENT_MAX_ITERATIONS,
        timeout=settings.AGENT_RUN_TIMEOUT,
        tool_timeout=settings.AGENT_TOOL_TIMEOUT,
        first_output_wait=FIRST_OUTPUT_WAIT_SECONDS,
    )
    active = ActiveRun(
        conversation_id=conversation.pk,
        run_id=run_id,
        message_id=turn.assistant_message.pk,
        agent_run=agent_run,
        user_message={"id": user_message.pk, "content": user_message.content, "client_id": user_message.client_id},
        loop=asyncio.get_running_loop(),
        assistant_key=assistant.id,
        title_config=_title_config(conversation, user_message, model_config),
        owner_id=owner.pk,
        stages=stages.current() or stages.Stages(),
    )
    process_state().runs[conversation.pk] = active
    telemetry.run_started(
        assistant=assistant.id,
        model=model_config.display_name,
        conversation_id=conversation.pk,
        run_id=run_id,
        user_id=owner.pk,
    )
    # A context of its own: the run outlives the request or socket that started it, whose context
    # ties database calls to that caller's thread (asgiref's ThreadSensitiveContext). Its log lines
    # carry the run's ids, and the user's.
    context = contextvars.Context()
    context.run(telemetry.log_context_set, user_id=owner.pk, conversation_id=conversation.pk, run_id=run_id)
    context.run(stages.adopt, active.stages)  # the run's own steps stamp the same send
    active.task = asyncio.create_task(relay_run_events(active), name=f"relay-{run_id}", context=context)
    active.stages.stamp("started")
    return active


def sync_tool_runner(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """An assistant's sync tool as an awaitable, run in the process's tool threads: never in the thread
    the ORM shares (`database_sync_to_async`), where a slow tool would hold up every user's queries."""
    state = process_state()
    if state.tool_threads is None:
        state.tool_threads = ToolThreads(size=settings.AGENT_TOOL_THREADS, around=_with_own_connections)
    return state.tool_threads.runner(function)


def _with_own_connections(call: Callable[[], Any]) -> Any:
    """A tool's database work in its thread, with connections cared for as a request's are."""
    close_old_connections()
    try:
        return call()
    finally:
        close_old_connections()


def _title_config(conversation: Conversation, question: Message, model_config: ModelConfig) -> ModelConfig | None:
    """The model to name the conversation with after this answer: only for a first question (or a new
    version of it), with a real model, when the owner has not named the conversation."""
    wanted = settings.AGENT_MODEL_TITLES and question.parent_id is None and not conversation.title_set_by_user
    return model_config if wanted and not model_config.uses_offline_model else None


async def run_stop(conversation: Conversation) -> bool:
    """Stop the conversation's streaming run, wherever it executes; False when none streams."""
    active = active_run_get(conversation.pk)
    if active is not None:
        active.stop()
        return True
    run_id = await database_sync_to_async(run_request_stop)(conversation=conversation)
    if run_id is None:
        return False
    await run_stop_fast(conversation.pk, run_id)
    return True


async def run_stop_fast(conversation_id: int, run_id: str) -> None:
    """Ask the process executing `run_id` to stop it now: the conversation's tabs there cancel it."""
    try:
        await get_channel_layer().group_send(protocol.group_name(conversation_id), protocol.run_stop_message(run_id))
    except Exception:
        # The stop is in the database too; the executing process sees it at its next heartbeat.
        logger.exception("sending the stop of run %s failed", run_id)


def run_cancel_here(conversation_id: int, run_id: str) -> None:
    """Cancel the run `run_id` if this process executes it (a stop asked on another process)."""
    active = active_run_get(conversation_id)
    if active is not None and active.run_id == run_id:
        active.stop()


def run_stop_threadsafe(conversation_id: int) -> bool:
    """Stop a run executing in this process, from any thread (a view deleting its conversation)."""
    active = active_run_get(conversation_id)
    if active is not None:
        active.loop.call_soon_threadsafe(active.stop)
    return active is not None


async def relay_run_events(active: ActiveRun) -> None:
    """Log and send each event of the run; store the answer before `final` and `done` go out."""
    helpers = [asyncio.create_task(_beat(active), name=f"heartbeat-{active.run_id}")]
    held: Event | None = None
    ended = False
    first_output = True
    loop = asyncio.get_running_loop()
    try:
        async for event in active.agent_run:
            if event["type"] == events.RUN_STARTED:
                event["user_message"] = active.user_message
            if event["type"] == events.FINAL:
                held = event
                continue
            if event["type"] == events.DONE:
                for helper in helpers:
                    helper.cancel()
                if active.interrupted and event["status"] == "cancelled":
                    held, event = _interruption(active, event)
                endings = [] if active.lost else await _persist(active, held, event)
                status = endings[-1]["status"] if endings else "lost"
                telemetry.run_ended(
                    report=active.agent_run.report,
                    assistant=active.assistant_key,
                    status=status,
                    process=WORKER_ID,
                    stages=active.stages,
                )
                for ending in endings:
                    await publish_event(active.conversation_id, active.run_id, ending)
                ended = bool(endings)
                if active.title_config is not None and endings and endings[-1].get("status") == "completed":
                    titles.title_from_model_start(
                        conversation_id=active.conversation_id,
                        question=active.user_message["content"],
                        answer=active.agent_run.answer_so_far,
                        config=active.title_config,
                    )
                continue  # `done` was the run's last event
            if active.lost:
                continue  # its tabs were told it ended; what it still says until it stops goes nowhere
            started = loop.time()
            await publish_event(active.conversation_id, active.run_id, event)
            if event["type"] == events.TOKEN:
                telemetry.TOKENS_RELAYED.inc()
            if first_output and event["type"] in OUTPUT:
                active.stages.stamp("first_frame")
                active.agent_run.first_output_sent()
                first_output = False
            if event["type"] in (events.TOKEN, events.TOOL_ARGS):
                # Text typed while this send was in flight, or within `relay_interval()` of it, waits in
                # the run's queue and goes out merged: sends stay bounded however fast the model is.
                await asyncio.sleep(max(0.0, relay_interval() - (loop.time() - started)))
    finally:
        telemetry.RUNS_ACTIVE.dec()
        runs = process_state().runs
        if runs.get(active.conversation_id) is active:
            del runs[active.conversation_id]
        for helper in helpers:
            helper.cancel()
        await asyncio.wait(helpers, timeout=1)
        try:
            await get_event_log().finish(active.run_id)
        except Exception:
            logger.exception("expiring the events of run %s failed", active.run_id)
        if ended and active.owner_id is not None:  # once the conversation is free for the next send
            await live.budget_changed_notify(active.owner_id)


def relay_interval() -> float:
    """How long a run's text events wait for more text to merge: `RELAY_MIN_INTERVAL_MS`, stretched by
    `RELAY_INTERVAL_PER_RUN_MS` per run streaming in this process, up to `RELAY_MAX_INTERVAL_MS`."""
    stretched = settings.RELAY_INTERVAL_PER_RUN_SECONDS * len(process_state().runs)
    return min(settings.RELAY_MAX_INTERVAL_SECONDS, max(settings.RELAY_MIN_INTERVAL_SECONDS, stretched))


async def publish_event(conversation_id: int, run_id: str, event: Event) -> None:
    """Append an event to the run's log, then send it to the conversation's tabs (encoded once).

    Each is retried (`PUBLISH_RETRY_DELAYS`) when it fails, as on a connection Redis dropped: the log
    keeps each `seq` once whatever the retries (`event_log`), and tabs ignore a `seq` they have."""
    text = events.encode(event)
    log, layer = get_event_log(), get_channel_layer()
    # The per-token path: one plain call each; the retry machinery only once one has failed.
    try:
        await log.append(run_id, event, text)
    except Exception as error:
        telemetry.EVENT_LOG_ERRORS.inc()
        await _retried(functools.partial(log.append, run_id, event, text), error, "logging", run_id, event)
    # Past the retries, tabs that miss the event see a gap in `seq` and catch up from the log or storage.
    group, message = protocol.group_name(conversation_id), protocol.run_event_message(text)
    try:
        await layer.group_send(group, message)
    except Exception as error:
        telemetry.RELAY_ERRORS.inc()
        await _retried(functools.partial(layer.group_send, group, message), error, "relaying", run_id, event)


async def _retried(
    attempt: Callable[[], Awaitable[Any]], failure: Exception, doing: str, run_id: str, event: Event
) -> None:
    """After `attempt()` failed with `failure`: again after each of `PUBLISH_RETRY_DELAYS` while it fails
    (none while retries are paused); logged either way."""
    state, loop = process_state(), asyncio.get_running_loop()
    delays = PUBLISH_RETRY_DELAYS if loop.time() >= state.publish_retries_paused_until else ()
    for number, delay in enumerate(delays, start=2):
        await asyncio.sleep(delay)
        try:
            await attempt()
        except Exception as error:
            failure = error
            (telemetry.EVENT_LOG_ERRORS if doing == "logging" else telemetry.RELAY_ERRORS).inc()
            continue
        logger.warning("%s event %s of run %s succeeded at attempt %d", doing, event["seq"], run_id, number)
        return
    tries = len(delays) + 1
    seq = event["seq"]
    logger.error("%s event %s of run %s failed %d times; given up", doing, seq, run_id, tries, exc_info=failure)
    state.publish_retries_paused_until = loop.time() + PUBLISH_RETRY_PAUSE_SECONDS


def _interruption(active: ActiveRun, cancelled: Event) -> tuple[Event, Event]:
    """A run the process stopped (it restarts, and the drain's time ran out) ends as a dead process's run
    does (see `watchdog`): its report and its last events say `interrupted`, not `cancelled`: an `error`
    `interrupted` saying the server restarted, then `done`."""
    report = active.agent_run.report
    report.status = "interrupted"
    report.error_code, report.error_message = events.ERROR_INTERRUPTED, RUN_RESTARTED
    seq = cancelled["seq"]
    error = events.error(run_id=active.run_id, seq=seq, code=events.ERROR_INTERRUPTED, message=RUN_RESTARTED)
    return error, events.done(run_id=active.run_id, seq=seq + 1, status="interrupted")


async def _persist(active: ActiveRun, final: Event | None, done: Event) -> list[Event]:
    """Store the run's outcome; the events that end its stream: `final` (or the `error` of an
    interruption), if any, and `done` once it is stored, or, if it cannot be, `error` and `done`
    `error` after storing what can be kept."""
    report = active.agent_run.report
    for attempt in range(1, PERSIST_ATTEMPTS + 1):
        try:
            with telemetry.timed(telemetry.DATABASE_SECONDS, "run_end"):
                stored = await database_sync_to_async(run_finish)(
                    message_id=active.message_id, report=report, worker=WORKER_ID
                )
            if not stored:
                _lost(active)
                return []
            return [e for e in (final, done) if e is not None]
        except Exception:
            logger.exception("storing run %s failed (attempt %d)", active.run_id, attempt)
            await asyncio.sleep(0.2 * attempt)
    try:
        await database_sync_to_async(run_store_failed)(message_id=active.message_id, content=report.content)
    except Exception:
        # Not even that: the watchdog marks it `interrupted` once its heartbeat is stale.
        logger.exception("storing the failure of run %s failed too", active.run_id)
    seq = final["seq"] if final is not None else done["seq"]
    return [
        events.error(run_id=active.run_id, seq=seq, code=events.ERROR_NOT_STORED, message=RUN_NOT_STORED),
        events.done(run_id=active.run_id, seq=seq + 1, status="error"),
    ]


async def _beat(active: ActiveRun) -> None:
    """Every few seconds: record the answer so far and look for a stop asked from elsewhere."""
    report = active.agent_run.report
    while True:
        await asyncio.sleep(settings.RUN_HEARTBEAT_SECONDS)
        try:
            with telemetry.timed(telemetry.DATABASE_SECONDS, "heartbeat"):
                beat = await database_sync_to_async(run_heartbeat)(
                    message_id=active.message_id,
                    content=active.agent_run.answer_so_far,
                    tool_steps=[step.as_dict() for step in report.tool_steps],
                    worker=WORKER_ID,
                )
        except Exception:
            logger.exception("heartbeat of run %s failed", active.run_id)
            continue
        if beat == BEAT_LOST:
            _lost(active)
            return
        if beat == BEAT_STOP:
            active.stop()


def _lost(active: ActiveRun) -> None:
    """The run's message is no longer its own: another process took the run for dead (it was silent
    past `RUN_STALE_SECONDS`), stored it `interrupted` and told its tabs. It stops, and says nothing
    more, so that the conversation, free for a new run, never has two."""
    logger.warning("run %s lost its message to a sweep (silent too long); it stops without storing", active.run_id)
    active.lose()
