"""Arithmetic in questions, for the offline demo model: parse, then plan tool calls.

`parse_expression("what is 7 times 6 minus 2")` gives the expression `7 * 6 - 2`;
`plan_ready_operations` says which operations can run now (all whose operands are
known, so independent ones run in parallel) and which are done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent_runtime.tools import bounded_power, normalise_result

_WORDS = [
    (r"\bto the power of\b|\braised to(?: the power of)?\b|\*\*", " ^ "),
    (r"\bsquared\b", " ^ 2 "),
    (r"\bcubed\b", " ^ 3 "),
    (r"\bmultiplied by\b|\btimes\b|×|(?<=\d)\s*x\s*(?=\d)", " * "),
    (r"\bplus\b|\badded to\b", " + "),
    (r"\bminus\b|−", " - "),
]
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[-+*^()]")
_TOOLS = {"+": ("add", "+"), "-": ("subtract", "-"), "*": ("multiply", "*"), "^": ("exponentiate", "^")}


@dataclass
class Operation:
    """A binary operation of the expression, numbered in evaluation (post-) order."""

    number: int
    tool: str
    symbol: str
    x: Any = None
    y: Any = None
    result: Any = None


@dataclass
class Node:
    """A number (`value`) or an operation on two nodes."""

    value: Any = None
    symbol: str = ""
    left: Node | None = None
    right: Node | None = None


@dataclass
class Expression:
    """A parsed expression and its text as the demo model writes it."""

    root: Node
    text: str

    def __str__(self) -> str:
        return self.text


MAX_TOKENS = 200
"""Numbers, operators and parentheses in one expression: bounds its nesting, so its recursion."""


class ExpressionTooComplex(ValueError):
    """The expression has more than MAX_TOKENS numbers, operators and parentheses."""


def parse_expression(question: str) -> Expression | None:
    """The arithmetic expression in a question, or None when there is none.

    Raises ExpressionTooComplex past MAX_TOKENS (deep nesting would exhaust the recursion).
    """
    text = question.lower()
    for pattern, symbol in _WORDS:
        text = re.sub(pattern, symbol, text)
    tokens = _TOKEN.findall(text)
    if not any(t in _TOOLS for t in tokens) or sum(t[0].isdigit() for t in tokens) < 2:
        return None
    if len(tokens) > MAX_TOKENS:
        raise ExpressionTooComplex(len(tokens))
    parser = _Parser(tokens)
    try:
        root = parser.expression()
    except (IndexError, ValueError):
        return None
    if parser.position != len(tokens) or root.value is not None:
        return None
    return Expression(root=root, text=_render(tokens))


def plan_ready_operations(expression: Expression, known: dict[int, Any]) -> tuple[list[Operation], list[Operation]]:
    """Operations whose operands are known but not yet run, and the operations done (in order)."""
    ready: list[Operation] = []
    done: list[Operation] = []
    counter = iter(range(1, 10_000))

    def visit(node: Node) -> Any:
        if not node.symbol:
            return node.value
        x, y = visit(node.left), visit(node.right)
        tool, symbol = _TOOLS[node.symbol]
        operation = Operation(number=next(counter), tool=tool, symbol=symbol, x=x, y=y)
        if operation.number in known:
            operation.result = known[operation.number]
            done.append(operation)
            return operation.result
        if x is not None and y is not None:
            ready.append(operation)
        return None

    visit(expression.root)
    return ready, done


def evaluate(expression: Expression) -> Any:
    """The expression's value, as the tools would compute it (for tests)."""

    def visit(node: Node) -> Any:
        if not node.symbol:
            return node.value
        x, y = visit(node.left), visit(node.right)
        if node.symbol == "^":
            return normalise_result(bounded_power(x, y))
        return normalise_result({"+": x + y, "-": x - y, "*": x * y}[node.symbol])

    return visit(expression.root)


class _Parser:
    """Recursive descent: + and - below *, below ^ (right-associative), below unary minus."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self) -> str:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def expression(self) -> Node:
        node = self._term()
        while self._peek() in ("+", "-"):
            node = Node(symbol=self._take(), left=node, right=self._term())
        return node

    def _term(self) -> Node:
        node = self._power()
        while self._peek() == "*":
            node = Node(symbol=self._take(), left=node, right=self._power())
        return node

    def _power(self) -> Node:
        node = self._atom()
        if self._peek() == "^":
            return Node(symbol=self._take(), left=node, right=self._power())
        return node

    def _atom(self) -> Node:
        token = self._take()
        if token == "-":
            inner = self._atom()
            if inner.value is None:
                raise ValueError("minus applies to numbers only")
            return Node(value=-inner.value)
        if token == "(":
            node = self.expression()
            if self._take() != ")":
                raise ValueError("unbalanced parenthesis")
            return node
        if token[0].isdigit():
            return Node(value=float(token) if "." in token else int(token))
        raise ValueError(f"unexpected {token!r}")


def _render(tokens: list[str]) -> str:
    text = " ".join(tokens)
    return text.replace("( ", "(").replace(" )", ")")
