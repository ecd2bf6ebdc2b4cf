"""The layers' boundaries, checked: what each package of the product may not import.

The layers, bottom to top: `agent_runtime` (LangChain only, knows nothing of Django) <
`conversations` (the chat) < `review`, `accounts`, `api` (apps side by side on top) < `chatsite`
(settings, ASGI, URLs). A package imports only what sits below it. Every `import x` and
`from x import y` counts, wherever it stands (inside a function, under `TYPE_CHECKING`, in a
migration), relative ones resolved, and so does `import_module("x")` with a literal name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

APPS = ("conversations", "review", "accounts", "api", "chatsite")


@dataclass(frozen=True)
class Rule:
    """A layer, the top-level packages its modules must not import, and why."""

    layer: str
    forbidden: tuple[str, ...]
    why: str


RULES = {
    rule.layer: rule
    for rule in [
        Rule("agent_runtime", ("django", "channels", *APPS), "the runtime is LangChain only"),
        Rule("conversations", ("review", "accounts", "api", "chatsite"), "the chat domain is below the apps"),
        Rule("review", ("accounts", "api", "chatsite"), "review stands beside accounts and api"),
        Rule("accounts", ("review", "api", "chatsite"), "accounts stands beside review and api"),
        Rule("api", ("review", "accounts", "chatsite"), "api stands beside review and accounts"),
    ]
}
"""The architecture. `chatsite` (settings, ASGI, URLs) is on top of all and may import any of them."""


@dataclass(frozen=True)
class Import:
    """One module a source file imports, and where."""

    path: Path
    line: int
    module: str

    @property
    def top(self) -> str:
        return self.module.split(".")[0]


def module_name(path: Path) -> str:
    """The dotted name of the module at `path` (a package's `__init__.py` is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(path: Path, node: ast.ImportFrom) -> list[str]:
    """The modules a `from ... import ...` names: relative ones made absolute from `path`'s package."""
    if node.level == 0:
        return [node.module or ""]
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)] if node.level - 1 <= len(package) else []
    if node.module:
        return [".".join([*base, node.module])]
    if base:
        return [".".join(base)]
    return [alias.name for alias in node.names]  # `from .. import app` above the top-level packages


def imports_of(path: Path) -> Iterator[Import]:
    """Every module `path` imports, at any depth of its syntax tree."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            for module in resolve(path, node):
                yield Import(path, node.lineno, module)
        elif (
            isinstance(node, ast.Call)
            and _called_name(node.func) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            yield Import(path, node.lineno, node.args[0].value)


def _called_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def sources(layer: str) -> list[Path]:
    """The layer's Python files, migrations and all."""
    return sorted(p for p in (ROOT / layer).rglob("*.py") if "__pycache__" not in p.parts)


def violations(layer: str) -> list[str]:
    """One line per forbidden import in `layer`: file, line, what it imports, and the rule."""
    found = []
    for path in sources(layer):
        for imported in imports_of(path):
            rule = RULES[layer]
            if imported.top in rule.forbidden:
                where = f"{path.relative_to(ROOT)}:{imported.line}"
                found.append(
                    f"{where}: imports {imported.module!r}, but {layer} may not import "
                    f"{', '.join(rule.forbidden)} ({rule.why})"
                )
    return found


@pytest.mark.parametrize("layer", list(RULES))
def test_the_layer_imports_nothing_above_or_beside_it(layer):
    assert sources(layer), f"no Python files under {layer}/: the table names a package that is gone"
    problems = violations(layer)
    assert not problems, "\n".join(["forbidden imports:", *problems])


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("conversations/runs.py", "from .models import Message", ["conversations.models"]),
        ("conversations/__init__.py", "from . import live", ["conversations"]),
        ("conversations/management/commands/ask.py", "from ...sending import x", ["conversations.sending"]),
        ("conversations/runs.py", "from .. import review", ["review"]),
        ("agent_runtime/text.py", "from django.conf import settings", ["django.conf"]),
    ],
)
def test_relative_imports_are_resolved(module, source, expected):
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.ImportFrom)
    assert resolve(ROOT / module, node) == expected


def test_imports_inside_functions_and_type_checking_count(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    source = tmp_path / "agent_runtime" / "late.py"
    source.parent.mkdir()
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from conversations.models import Message\n"
        "def f():\n"
        "    import channels.layers\n"
        "    return importlib.import_module('review.models')\n",
        encoding="utf-8",
    )
    assert [(i.line, i.module) for i in imports_of(source) if i.top != "typing"] == [
        (3, "conversations.models"),
        (5, "channels.layers"),
        (6, "review.models"),
    ]
    assert len(violations("agent_runtime")) == 3
