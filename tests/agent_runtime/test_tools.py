"""The tools: typed, validated, bounded; every result finite and JSON-serialisable, or an error."""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agent_runtime.errors import describe_tool_error
from agent_runtime.tools import (
    NOT_A_NUMBER,
    NOT_FINITE,
    NOT_REAL,
    RESULT_TOO_LARGE,
    ZERO_TO_NEGATIVE,
    ToolInputError,
    add,
    exponentiate,
    final_answer,
    multiply,
    subtract,
)

pytestmark = pytest.mark.asyncio

ARITHMETIC = [add, subtract, multiply, exponentiate]
anything = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)


async def invoke(tool, **args):
    """The tool's result, or the readable error the executor would report."""
    try:
        return "ok", await tool.ainvoke(args)
    except (ValidationError, ToolInputError) as error:
        return "error", describe_tool_error(error)


async def test_the_lesson_examples():
    assert await add.ainvoke({"x": 10, "y": 10}) == 20
    assert await subtract.ainvoke({"x": 10, "y": 3}) == 7
    assert await multiply.ainvoke({"x": 7, "y": 6}) == 42
    assert await exponentiate.ainvoke({"x": 2, "y": 10}) == 1024
    assert await final_answer.ainvoke({"answer": "20", "tools_used": ["add"]}) == {
        "answer": "20",
        "tools_used": ["add"],
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"x": "abc", "y": 1}, NOT_A_NUMBER),
        ({"x": float("nan"), "y": 1}, NOT_FINITE),
        ({"x": float("inf"), "y": 1}, NOT_FINITE),
        ({"x": True, "y": 1}, NOT_A_NUMBER),
        ({"x": 1}, "Field required"),
    ],
)
async def test_bad_input_is_a_readable_error(args, message):
    outcome, text = await invoke(add, **args)
    assert outcome == "error"
    assert message in text


async def test_numeric_text_is_accepted():
    assert await add.ainvoke({"x": "2.5", "y": " 3 "}) == 5.5


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [(10, 10**10, RESULT_TOO_LARGE), (-8, 0.5, NOT_REAL), (0, -1, ZERO_TO_NEGATIVE), (1e200, 2, RESULT_TOO_LARGE)],
)
async def test_exponentiate_refuses_what_it_cannot_answer(x, y, message):
    assert await invoke(exponentiate, x=x, y=y) == ("error", message)


async def test_a_huge_power_is_refused_without_being_computed():
    started = time.perf_counter()
    outcome, text = await invoke(exponentiate, x=10, y=10**10)
    elapsed = time.perf_counter() - started
    assert (outcome, text) == ("error", RESULT_TOO_LARGE)
    # Computing 10 ** 10 ** 10 would take minutes and gigabytes; refusing it takes no time at all.
    assert elapsed < 0.05


async def test_multiplying_past_the_float_range_is_an_error():
    assert await invoke(multiply, x=1e300, y=1e300) == ("error", RESULT_TOO_LARGE)


@settings(max_examples=300, deadline=None)
@given(tool=st.sampled_from(ARITHMETIC), x=anything, y=anything)
async def test_any_input_gives_a_finite_json_result_or_an_error(tool, x, y):
    outcome, value = await invoke(tool, x=x, y=y)
    if outcome == "ok":
        assert isinstance(value, int | float) and not isinstance(value, bool)
        assert math.isfinite(value)
        assert abs(value) <= 1e300
    else:
        assert isinstance(value, str) and value
    json.dumps(value, allow_nan=False)
