"""The agent's tools. Each docstring is the description the model reads.

Arguments are validated by each tool's schema; anything that is not a finite
number, or a result that would not be one, raises `ToolInputError` with a message
the model (and the person watching) can read. Results always serialise with
`json.dumps(..., allow_nan=False)`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from langchain_core.tools import BaseTool, tool
from pydantic import BeforeValidator, Field

# Results beyond this magnitude are refused rather than computed.
MAX_MAGNITUDE = 1e300
# Integers beyond this lose precision in a browser, so they travel as floats.
MAX_EXACT_INT = 2**53

NOT_A_NUMBER = "must be a number"
NOT_FINITE = "must be a finite number"
RESULT_TOO_LARGE = "the result would be too large to compute (more than 1e300)"
RESULT_NOT_FINITE = "the result is not a finite number"
NOT_REAL = "a negative number to a fractional power is not a real number"
ZERO_TO_NEGATIVE = "zero to a negative power is undefined"

FINAL_ANSWER = "final_answer"


class ToolInputError(ValueError):
    """A tool was given, or would produce, something that is not a finite number."""


def _as_number(value: Any) -> int | float:
    """Accept ints, finite floats and numeric text; refuse booleans, NaN, infinities, the rest."""
    if isinstance(value, bool):
        raise ValueError(f"{NOT_A_NUMBER}, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{NOT_A_NUMBER}, not {value[:40]!r}") from None
    if isinstance(value, int):
        if abs(value) > MAX_MAGNITUDE:
            raise ValueError(f"{NOT_FINITE} of at most 1e300")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(NOT_FINITE)
        return value
    raise ValueError(f"{NOT_A_NUMBER}, not {type(value).__name__}")


Number = Annotated[int | float, BeforeValidator(_as_number)]


def normalise_result(value: int | float) -> int | float:
    """Return a JSON-safe finite number: exact ints while a browser can hold them, floats beyond."""
    if isinstance(value, int):
        if abs(value) > MAX_MAGNITUDE:
            raise ToolInputError(RESULT_TOO_LARGE)
        return value if abs(value) <= MAX_EXACT_INT else float(value)
    if math.isnan(value):
        raise ToolInputError(RESULT_NOT_FINITE)
    if abs(value) > MAX_MAGNITUDE:
        raise ToolInputError(RESULT_TOO_LARGE)
    return int(value) if value.is_integer() and abs(value) <= MAX_EXACT_INT else value


@tool
async def add(x: Number, y: Number) -> int | float:
    """Add 'x' and 'y'."""
    return normalise_result(x + y)


@tool
async def subtract(x: Number, y: Number) -> int | float:
    """Subtract 'y' from 'x'."""
    return normalise_result(x - y)


@tool
async def multiply(x: Number, y: Number) -> int | float:
    """Multiply 'x' and 'y'."""
    return normalise_result(x * y)


@tool
async def exponentiate(x: Number, y: Number) -> int | float:
    """Raise 'x' to the power of 'y'."""
    return normalise_result(bounded_power(x, y))


def bounded_power(base: int | float, exponent: int | float) -> int | float:
    """`base ** exponent`, refused in constant time when the result would exceed MAX_MAGNITUDE."""
    if base == 0:
        if exponent < 0:
            raise ToolInputError(ZERO_TO_NEGATIVE)
        return 1 if exponent == 0 else 0
    if base < 0 and not float(exponent).is_integer():
        raise ToolInputError(NOT_REAL)
    if exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise ToolInputError(RESULT_TOO_LARGE)
    if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
        return base**exponent
    return float(base) ** float(exponent)


@tool
async def final_answer(
    answer: Annotated[str, Field(description="The answer to the user, in natural language.")],
    tools_used: Annotated[list[str], Field(description="The names of the tools used.")],
) -> dict[str, Any]:
    """Use this tool to provide a final answer to the user.
    The answer should be in natural language as this will be provided
    to the user directly. The tools_used must include a list of tool
    names that were used within the `scratchpad`.
    """
    return {"answer": answer, "tools_used": tools_used}


TOOLS: list[BaseTool] = [add, subtract, multiply, exponentiate, final_answer]
TOOLS_BY_NAME: dict[str, BaseTool] = {t.name: t for t in TOOLS}
