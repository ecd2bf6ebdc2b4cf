"""Time to first token: the process warm-up, and the benchmark scenario's own arithmetic.

The scenario end to end (`python -m bench.ttft --quick`) starts real processes and takes about a
minute; here its figures and targets are checked on made-up samples, and the warm-up on this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os

import pytest

from bench import ttft
from conversations.warmup import serving_process, warm_up, warm_up_if_serving
from tests.fake_openai import FakeOpenAI, RequestTiming


@pytest.mark.parametrize(
    ("argv", "serving"),
    [
        (["/srv/.venv/bin/daphne", "chatsite.asgi:application"], True),
        (["/srv/.venv/lib/python3.11/site-packages/uvicorn/__main__.py", "chatsite.asgi:application"], True),
        (["gunicorn"], True),
        (["manage.py", "migrate"], False),
        (["/srv/manage.py", "serve", "--port", "8001"], True),
        (["/srv/.venv/bin/pytest"], False),
        ([""], False),
    ],
)
def test_only_web_server_processes_count_as_serving(argv, serving):
    assert serving_process(argv) is serving


def test_no_warm_up_outside_a_web_server_or_when_switched_off(settings, monkeypatch):
    assert warm_up_if_serving() is None  # this is pytest
    monkeypatch.setattr("sys.argv", ["/srv/.venv/bin/daphne", "chatsite.asgi:application"])
    settings.AGENT_WARM_UP = False
    assert warm_up_if_serving() is None


@pytest.mark.django_db(transaction=True)
def test_the_warm_up_gets_every_part_ready_without_a_failure(caplog):
    with caplog.at_level(logging.WARNING, logger="conversations.warmup"):
        took = warm_up()
    assert set(took) == {"models", "database", "channels"}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.asyncio
async def test_the_channel_layer_and_event_log_connections_open_in_the_serving_loop(caplog):
    from conversations import warmup

    assert warmup._serving_loop() is asyncio.get_running_loop()
    with caplog.at_level(logging.WARNING, logger="conversations.warmup"):
        await warmup._open_connections()
    assert caplog.records == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_forked_after_the_warm_up_still_gets_its_database_calls_run():
    from asgiref.sync import SyncToAsync

    from conversations import warmup

    warmup._warm_database()  # the worker thread now exists in this process
    pid = os.fork()
    if pid == 0:  # the child: its copy of the executor must run work (gunicorn --preload forks like this)
        try:
            SyncToAsync.single_thread_executor.submit(lambda: None).result(timeout=5)
        except BaseException:
            os._exit(1)
        os._exit(0)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_failing_part_is_logged_and_skipped(monkeypatch, caplog):
    def broken() -> None:
        raise RuntimeError("no channel layer today")

    monkeypatch.setattr("conversations.warmup._warm_channels", broken)
    monkeypatch.setattr("conversations.warmup._warm_database", lambda: None)
    with caplog.at_level(logging.WARNING, logger="conversations.warmup"):
        took = warm_up()
    assert "channels" in took
    assert any("warming up the channels failed" in r.getMessage() for r in caplog.records)


def send(sent: float, received: float | None, first_event: float | None, frames: list[float | None]) -> ttft.Send:
    timing = None if received is None else RequestTiming(received=received, first_event=first_event)
    return ttft.Send(sent=sent, timing=timing, first_frames=frames, done=True, requests=0 if timing is None else 1)


def test_a_send_is_split_into_the_products_share_and_the_way_back():
    one = send(10.0, 10.002, 10.003, [10.005, 10.006])
    assert one.share_ms == pytest.approx(2.0)
    assert one.first_frame_ms == pytest.approx([5.0, 6.0])
    assert one.model_to_frame_ms == pytest.approx([2.0, 3.0])


def test_a_send_the_model_never_saw_or_a_tab_never_got_counts_as_failed():
    samples = ttft.Samples()
    samples.add(send(1.0, None, None, [1.1, 1.1]), cold=False)
    samples.add(send(1.0, 1.001, 1.002, [1.1, None]), cold=False)
    samples.add(send(1.0, 1.001, 1.002, [1.1, 1.2]), cold=False)
    assert samples.failed == 2 and len(samples.share) == 1
    assert samples.failures == {"0 model requests": 1, "a tab got no token": 1}


def test_summary_and_targets():
    samples = ttft.Samples()
    samples.add(send(0.0, 0.300, 0.301, [0.320, 0.330]), cold=True)
    for n in range(10):
        samples.add(send(float(n), n + 0.002 + n / 10000, n + 0.003, [n + 0.006, n + 0.007]), cold=False)
    samples.direct_first_token += [1.5, 2.5, 2.0]
    samples.over_langchain += [1.0, 1.5, 2.5, 1.8, 1.2]
    samples.langchain_first_token += [4.0, 5.0, 6.0]
    figures = ttft.summarise(samples, ttft.QUICK)
    assert figures["product_share_p50_ms"] == pytest.approx(2.4, abs=0.11)
    assert figures["cold_share_ms"] == pytest.approx(300)
    assert figures["cold_extra_ms"] == pytest.approx(330 - figures["send_to_first_frame_p50_ms"])
    assert figures["direct_first_token_p50_ms"] == 2.0
    assert (figures["share_over_langchain_p50_ms"], figures["langchain_first_token_p50_ms"]) == (1.5, 5.0)

    results = {"configs": {"sqlite_memory": figures, "postgres_redis": {"skipped": "no PostgreSQL"}}}
    results["targets"] = ttft.targets(results["configs"])
    verdicts = {t["name"]: t["met"] for t in results["targets"]}
    assert verdicts == {
        "TTFT product share over LangChain p50, SQLite + in-memory (warm)": True,
        "TTFT product share over LangChain p50, PostgreSQL + Redis (warm)": None,
        "TTFT first send after start minus warm p50, SQLite + in-memory": False,
        "TTFT first send after start minus warm p50, PostgreSQL + Redis": None,
    }
    printed = ttft.table(results)
    assert "MET: TTFT product share over LangChain p50, SQLite" in printed
    assert "MISSED: TTFT first send after start" in printed
    assert "skipped: no PostgreSQL" in printed


def test_a_sends_stages_come_from_the_tab_the_product_and_the_model_server():
    one = send(10.0, 10.010, 10.011, [10.020, 10.021])
    log = "\n".join(
        [
            '{"event": "run_started", "run_id": "r1"}',
            json.dumps(
                {
                    "event": "run_finished",
                    "run_id": "r1",
                    "stages_ms": {"received": 0.0, "checked": 0.5, "request": 2.0, "stored": 6.0, "first_frame": 15},
                    "stages_origin_monotonic": 10.001,
                }
            ),
        ]
    )
    one.stamps = ttft.stage_stamps(log, "r1")
    assert ttft.stage_stamps(log, "another run") == {}

    lengths = one.segments_ms()
    assert lengths["socket"] == pytest.approx([1.0])
    assert lengths["checks"] == pytest.approx([0.5])
    assert lengths["request out"] == pytest.approx([7.0])  # request (10.003) → the model server (10.010)
    assert lengths["to the tab"] == pytest.approx([4.0, 5.0])  # first frame sent (10.016) → each tab
    assert "first chunk" not in lengths  # not stamped: not counted

    samples = ttft.Samples()
    samples.add(one, cold=False)
    stages = ttft.summarise(samples, ttft.QUICK)["stages"]
    assert stages["request out"] == {"p50_ms": 7.0, "p95_ms": 7.0, "count": 1}
    assert "| socket (sent → received) | 1.00 | 1.00 |" in ttft.stage_table(
        {"configs": {"sqlite_memory": {"stages": stages}}}
    )


def test_the_model_server_stamps_each_request_and_its_first_event():
    import httpx

    with FakeOpenAI(default=ttft.answer()) as fake:
        for _ in range(2):
            response = httpx.post(
                fake.base_url + "/chat/completions", json={"model": "m", "messages": [], "stream": True}, timeout=5
            )
            assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
    assert len(fake.timings) == 2
    for timing in fake.timings:
        assert timing.first_event is not None and timing.received <= timing.first_event


def test_the_model_server_runs_in_a_process_of_its_own_and_reports_its_stamps_and_requests():
    import time

    import httpx

    with ttft.ModelServer() as server:
        assert server.timings == [] and server.requests == []
        before = time.monotonic()
        for n in range(2):
            body = {"model": "m", "messages": [{"role": "user", "content": f"question {n}"}], "stream": True}
            response = httpx.post(server.base_url + "/chat/completions", json=body, timeout=5)
            assert response.status_code == 200 and response.text.endswith("data: [DONE]\n\n")
        timings, requests = server.timings, server.requests
        process = server._process
        assert process.pid != os.getpid() and process.is_alive()
    assert not process.is_alive()
    assert [r["messages"][0]["content"] for r in requests] == ["question 0", "question 1"]
    assert len(timings) == 2
    for timing in timings:  # one monotonic clock for both processes
        assert before <= timing.received <= timing.first_event <= time.monotonic()
