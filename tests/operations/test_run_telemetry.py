"""A run shows in the metrics (started, finished by status, tokens relayed, first token) and in the log:
one line at its start and one at its end, with its ids, tokens and timings; a WARNING when it did not
complete for a reason an operator must see."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import REGISTRY

from agent_runtime.report import RunReport
from chatsite.logs import ContextFilter, JsonFormatter, TextFormatter
from conversations import telemetry
from conversations.telemetry import log_context

pytestmark = pytest.mark.django_db(transaction=True)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def run_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "agentchat.runs"]


@pytest.mark.asyncio
async def test_a_completed_run_is_counted_and_logged_with_its_ids(tabs, conversation, alice, caplog):
    caplog.set_level(logging.INFO, logger="agentchat.runs")
    before = {
        "started": sample("agentchat_runs_started_total"),
        "completed": sample("agentchat_runs_finished_total", status="completed"),
        "tokens": sample("agentchat_tokens_relayed_total"),
        "first": sample("agentchat_first_token_seconds_count"),
        "snapshots": sample("agentchat_snapshots_total", reason="connect"),
        "output": sample("agentchat_model_tokens_total", direction="output"),
        "active": sample("agentchat_runs_active"),
    }
    tab = await tabs()
    await tab.ask("count to 5")
    seen = await tab.run_events_until_done()
    tokens_seen = sum(1 for e in seen if e["type"] == "token")

    assert seen[-1]["status"] == "completed"
    assert sample("agentchat_runs_started_total") - before["started"] == 1
    assert sample("agentchat_runs_finished_total", status="completed") - before["completed"] == 1
    assert sample("agentchat_tokens_relayed_total") - before["tokens"] == tokens_seen > 0
    assert sample("agentchat_first_token_seconds_count") - before["first"] == 1
    assert sample("agentchat_snapshots_total", reason="connect") - before["snapshots"] == 1
    assert sample("agentchat_model_tokens_total", direction="output") > before["output"]
    assert sample("agentchat_runs_active") == before["active"]

    started, finished = run_lines(caplog)
    run_id = seen[0]["run_id"]
    assert (started.getMessage(), started.levelname) == ("run started", "INFO")
    assert (started.run_id, started.conversation_id, started.user_id) == (run_id, conversation.pk, alice.pk)
    assert started.assistant and started.model
    assert (finished.getMessage(), finished.levelname, finished.status) == ("run finished", "INFO", "completed")
    assert finished.run_id == run_id
    assert (
        finished.output_tokens > 0 and finished.first_token_ms > 0 and finished.duration_ms >= finished.first_token_ms
    )
    assert finished.worker


@pytest.mark.asyncio
async def test_a_sends_steps_are_logged_and_counted_from_its_frame_to_its_first_words(tabs, caplog):
    caplog.set_level(logging.INFO, logger="agentchat.runs")
    steps = ("checked", "stored", "started", "request", "first_chunk", "first_frame")
    before = {step: sample("agentchat_send_stage_seconds_count", stage=step) for step in steps}
    tab = await tabs()
    await tab.ask("count to 5")
    seen = await tab.run_events_until_done()

    assert seen[-1]["status"] == "completed"
    finished = run_lines(caplog)[-1]
    assert list(finished.stages_ms) == ["received", *steps]  # every step, in the order they happen
    assert list(finished.stages_ms.values()) == sorted(finished.stages_ms.values())
    assert finished.stages_ms["received"] == 0.0 and finished.stages_origin_monotonic > 0
    for step in steps:
        assert sample("agentchat_send_stage_seconds_count", stage=step) - before[step] == 1


@pytest.mark.asyncio
async def test_a_stopped_run_counts_as_cancelled_and_logs_at_info(tabs, caplog, paced):
    caplog.set_level(logging.INFO, logger="agentchat.runs")
    paced(50)
    before = sample("agentchat_runs_finished_total", status="cancelled")
    tab = await tabs()
    await tab.ask("count to 200")
    await tab.receive_until(lambda f: f.get("type") == "token")
    await tab.send({"type": "stop"})
    seen = await tab.run_events_until_done()

    assert seen[-1]["status"] == "cancelled"
    assert sample("agentchat_runs_finished_total", status="cancelled") - before == 1
    assert run_lines(caplog)[-1].levelname == "INFO"


def test_a_model_error_is_counted_by_code_and_logged_as_a_warning(caplog):
    caplog.set_level(logging.INFO, logger="agentchat.runs")
    report = RunReport(run_id="r-1", model="gpt-test", status="error")
    report.error_code, report.error_message = "model_rate_limited", "The model is rate limited."
    report.finished = report.started + 1.5
    before = sample("agentchat_model_errors_total", code="model_rate_limited")

    telemetry.run_ended(report=report, assistant="arithmetic", status="error", process="host:1:abc")

    assert sample("agentchat_model_errors_total", code="model_rate_limited") - before == 1
    line = run_lines(caplog)[-1]
    assert line.levelname == "WARNING"
    assert line.getMessage() == "run error: model_rate_limited: The model is rate limited."
    assert (line.error_code, line.duration_ms, line.first_token_ms) == ("model_rate_limited", 1500.0, None)


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("agentchat.runs", logging.WARNING, __file__, 1, message, None, None)
    made.__dict__.update(extra)
    ContextFilter().filter(made)
    return made


def test_a_json_line_has_time_level_logger_and_the_ids_of_the_context():
    with log_context(request_id="req-1", user_id=7, conversation_id=42, run_id="run-9"):
        made = record("run interrupted", status="interrupted", tokens=3)
    line = JsonFormatter().format(made)

    parsed = json.loads(line)
    assert "\n" not in line
    assert parsed["message"] == "run interrupted"
    assert (parsed["level"], parsed["logger"]) == ("WARNING", "agentchat.runs")
    assert parsed["time"].endswith("+00:00") and "T" in parsed["time"]
    assert (parsed["request_id"], parsed["user_id"], parsed["conversation_id"], parsed["run_id"]) == (
        "req-1",
        7,
        42,
        "run-9",
    )
    assert (parsed["status"], parsed["tokens"]) == ("interrupted", 3)
    assert isinstance(parsed["process"], int)


def test_a_json_line_survives_any_text_and_an_exception():
    try:
        raise ValueError("bad\udc80 value\x00")
    except ValueError:
        import sys

        made = logging.LogRecord("x", logging.ERROR, __file__, 1, "text \udc80 \x00 %s", ("arg",), sys.exc_info())
    line = JsonFormatter().format(made)

    assert line.isascii()  # a lone surrogate cannot break the stream the line is written to
    parsed = json.loads(line)
    assert parsed["message"] == "text \udc80 \x00 arg"
    assert "ValueError" in parsed["exc_info"]


def test_a_text_line_carries_the_same_fields():
    with log_context(run_id="run-9"):
        made = record("run finished", status="completed")
    line = TextFormatter().format(made)

    assert " WARNING agentchat.runs run finished " in line
    assert "status=completed" in line and "run_id=run-9" in line


@pytest.mark.asyncio
async def test_a_run_of_a_dead_process_is_counted_by_the_sweep_and_logged_as_a_warning(conversation, settings, caplog):
    from datetime import UTC, datetime, timedelta

    from channels.db import database_sync_to_async

    from conversations.models import Message
    from conversations.watchdog import sweep_interrupted_runs

    caplog.set_level(logging.INFO)
    beat = datetime.now(UTC) - timedelta(seconds=settings.RUN_STALE_SECONDS + 5)
    create = database_sync_to_async(Message.objects.create)
    await create(conversation=conversation, role="user", content="What is 1 + 2?", client_id="c1")
    await create(
        conversation=conversation,
        role="assistant",
        status="generating",
        run_id="dead-1",
        heartbeat=beat,
        started=beat,
        worker="gone:1:x",
    )
    before = sample("agentchat_sweep_interrupted_total")
    sweeps = sample("agentchat_database_seconds_count", operation="sweep")
    pings = sample("agentchat_redis_seconds_count", operation="ping")

    assert await sweep_interrupted_runs() == 1

    assert sample("agentchat_sweep_interrupted_total") - before == 1
    assert sample("agentchat_database_seconds_count", operation="sweep") - sweeps == 1
    assert sample("agentchat_redis_seconds_count", operation="ping") - pings == 1
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "run_interrupted"]
    assert line.levelname == "WARNING"
    assert (line.run_id, line.conversation_id, line.worker) == ("dead-1", conversation.pk, "gone:1:x")
