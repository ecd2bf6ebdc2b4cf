"""A run's first words go out before the rest of a burst of chunks is read (`first_output_wait`), and
each step of a send is stamped (`agent_runtime.stages`)."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_runtime import stages
from tests.support.runs import assert_well_formed, offline_run

pytestmark = pytest.mark.asyncio


async def _queued_while_held(run, *, release: bool) -> tuple[list[int], list[dict]]:
    """Iterate `run`; at its first output, note how many events wait in its queue over 20 loop turns."""
    seen, queued = [], []
    async for event in run:
        seen.append(event)
        if event["type"] in ("token", "tool_start") and not queued:
            for _ in range(20):
                queued.append(run.stream.queue.qsize())
                await asyncio.sleep(0)
            if release:
                run.first_output_sent()
    return queued, seen


async def test_the_model_stream_waits_for_the_first_output_to_be_sent(no_leaks):
    held = offline_run("What is 10 + 10?", first_output_wait=30.0)
    queued, seen = await _queued_while_held(held, release=True)

    assert len(set(queued)) == 1, f"chunks were read while the first output was being sent: {queued}"
    assert_well_formed(seen)
    assert seen[-1]["status"] == "completed"


async def test_without_a_wait_the_stream_runs_on(no_leaks):
    free = offline_run("What is 10 + 10?")
    queued, seen = await _queued_while_held(free, release=False)

    assert queued[-1] > queued[0]  # what the held run did not do: the model's chunks kept coming
    assert_well_formed(seen)


async def test_a_first_output_nobody_confirms_holds_the_stream_only_for_the_wait(no_leaks):
    run = offline_run("What is 10 + 10?", first_output_wait=0.05)
    started = time.monotonic()
    _queued, seen = await _queued_while_held(run, release=False)

    assert_well_formed(seen)
    assert seen[-1]["status"] == "completed"
    assert time.monotonic() - started < 10  # bounded, not stuck


async def test_a_send_is_stamped_step_by_step_in_order(no_leaks):
    with stages.timing() as timed:
        stages.stamp("checked")
        run = offline_run("What is 10 + 10?")
        async for _event in run:
            pass
        stages.stamp("checked")  # a stamp counts once: the first

    offsets = timed.offsets_ms()
    assert list(offsets) == ["received", "checked", "request", "first_chunk"]
    assert list(offsets.values()) == sorted(offsets.values())
    assert offsets["received"] == 0.0
    assert stages.current() is None  # the block's timing ended with it
