"""What an operator sees of the runs: Prometheus metrics and the ids every log line carries.

The metrics are prometheus-client's, in its default registry. With `PROMETHEUS_MULTIPROC_DIR` set
(`manage.py serve --workers N` sets it), each worker writes its values to files there and `/metrics`
adds them up across workers (`chatsite/health.py`); gauges then count live workers only.

`log_context` holds the ids of what the current task is doing (request, user, conversation, run);
`chatsite.logs` puts them on every log line. A run's task sets them once at its start, and every task
it creates inherits them.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from agent_runtime.stages import Stages

logger = logging.getLogger("agentchat.runs")

LOG_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("agentchat_log_context", default={})  # noqa: B039 - never mutated


def log_context_set(**ids: Any) -> contextvars.Token[dict[str, Any]]:
    """Add ids (request_id, user_id, conversation_id, run_id) to this task's log lines from now on."""
    return LOG_CONTEXT.set({**LOG_CONTEXT.get(), **{k: v for k, v in ids.items() if v is not None}})


@contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Add ids to the log lines written inside the block."""
    token = log_context_set(**ids)
    try:
        yield
    finally:
        LOG_CONTEXT.reset(token)


RUNS_STARTED = Counter("agentchat_runs_started", "Runs (answers) started in this process.")
RUNS_FINISHED = Counter(
    "agentchat_runs_finished",
    "Runs ended in this process, by how they ended (completed, cancelled, error, interrupted, lost).",
    ["status"],
)
RUNS_ACTIVE = Gauge("agentchat_runs_active", "Runs executing in this process now.", multiprocess_mode="livesum")
TOKENS_RELAYED = Counter(
    "agentchat_tokens_relayed", "Answer text events sent to the tabs (a merged event counts once)."
)
FIRST_TOKEN = Histogram(
    "agentchat_first_token_seconds",
    "From a run's start to its first answer text or tool call.",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60),
)
RUN_DURATION = Histogram(
    "agentchat_run_duration_seconds",
    "From a run's start to its end.",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 90, 120, 180, 300, 600),
)
MODEL_TOKENS = Counter(
    "agentchat_model_tokens", "Tokens the model reported, by direction (input, output).", ["direction"]
)
MODEL_ERRORS = Counter(
    "agentchat_model_errors",
    "Runs ended by the model's failure, by code (model_error, model_rate_limited, model_unavailable, model_timeout).",
    ["code"],
)
WEBSOCKETS_OPEN = Gauge(
    "agentchat_websockets_open", "Conversation sockets open in this process.", multiprocess_mode="livesum"
)
SNAPSHOTS = Counter(
    "agentchat_snapshots",
    "Snapshots sent to a tab, by why (connect, sync: a tab caught up after a gap or asked; branch; version).",
    ["reason"],
)
EVENT_LOG_ERRORS = Counter(
    "agentchat_event_log_errors", "Failed appends to or reads of a run's event log (each attempt counts)."
)
RELAY_ERRORS = Counter("agentchat_relay_errors", "Failed sends of an event to a conversation's group (each attempt).")
SWEEP_INTERRUPTED = Counter(
    "agentchat_sweep_interrupted", "Runs of silent (dead) processes this process's sweep stored `interrupted`."
)
APPROVALS_WAITING = Gauge(
    "agentchat_approvals_waiting",
    "Tool calls waiting for a person's approval in this process.",
    multiprocess_mode="livesum",
)
SEND_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SEND_STAGES = Histogram(
    "agentchat_send_stage_seconds",
    "From a send's frame being read to each step of its run (checked, stored, started, request, "
    "first_chunk, first_frame): where the wait for a first word goes.",
    ["stage"],
    buckets=SEND_STAGE_BUCKETS,
)
ROUND_TRIP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
DATABASE_SECONDS = Histogram(
    "agentchat_database_seconds",
    "Database round trips the process times (run heartbeat, run end, sweep, readiness).",
    ["operation"],
    buckets=ROUND_TRIP_BUCKETS,
)
REDIS_SECONDS = Histogram(
    "agentchat_redis_seconds",
    "Redis round trips the process times (a ping with each sweep, readiness).",
    ["operation"],
    buckets=ROUND_TRIP_BUCKETS,
)

MODEL_ERROR_CODES = frozenset({"model_error", "model_rate_limited", "model_unavailable", "model_timeout"})


@contextmanager
def timed(histogram: Histogram, operation: str) -> Iterator[None]:
    """Observe how long the block took (also when it raised)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(operation).observe(time.perf_counter() - started)


def run_started(*, assistant: str, model: str, conversation_id: int, run_id: str, user_id: int | None) -> None:
    """Count a run and say so in the log."""
    RUNS_STARTED.inc()
    RUNS_ACTIVE.inc()
    logger.info(
        "run started",
        extra={
            "event": "run_started",
            "assistant": assistant,
            "model": model,
            "run_id": run_id,
            "conversation_id": conversation_id,
            "user_id": user_id,
        },
    )


def run_ended(*, report: Any, assistant: str, status: str, process: str, stages: Stages | None = None) -> None:
    """Count a run's end (its status as stored), with its tokens, first token and duration, and when the
    steps of its send happened (`stages`); one log line, a WARNING when it did not complete for a
    reason an operator should see. (Its relay takes it off `agentchat_runs_active`, whatever happens.)"""
    RUNS_FINISHED.labels(status).inc()
    duration = max(0.0, (report.finished or time.time()) - report.started)
    RUN_DURATION.observe(duration)
    first_token_ms = None
    if report.first_output is not None:
        first = max(0.0, report.first_output - report.started)
        FIRST_TOKEN.observe(first)
        first_token_ms = round(first * 1000, 1)
    usage = report.usage
    MODEL_TOKENS.labels("input").inc(usage.get("input_tokens", 0))
    MODEL_TOKENS.labels("output").inc(usage.get("output_tokens", 0))
    code = report.error_code
    if code in MODEL_ERROR_CODES:
        MODEL_ERRORS.labels(code).inc()
    fields = {
        "event": "run_finished",
        "run_id": report.run_id,
        "assistant": assistant,
        "model": report.model,
        "status": status,
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "tokens_estimated": report.usage_estimated,
        "first_token_ms": first_token_ms,
        "duration_ms": round(duration * 1000, 1),
        "tool_calls": len(report.tool_steps),
        "worker": process,
    }
    if stages is not None and stages.stamps:
        offsets = stages.offsets_ms()
        for name, offset in offsets.items():
            if name != "received" and "received" in offsets:
                SEND_STAGES.labels(name).observe(offset / 1000)
        fields["stages_ms"] = offsets
        fields["stages_origin_monotonic"] = round(stages.origin or 0.0, 6)
    if code:
        fields["error_code"] = code
    warn = status in ("interrupted", "lost") or code in MODEL_ERROR_CODES or code == "not_stored"
    if warn:
        message = f"run {status}" + (f": {code}: {report.error_message}" if code else "")
        logger.warning(message, extra=fields)
    else:
        logger.info("run finished", extra=fields)
