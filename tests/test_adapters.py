"""The adapters (the socket, the API, the pages, the command) only adapt the actions: no adapter
tells the tabs anything itself, and each maps every refusal code to its own wire."""

from __future__ import annotations

import ast
from pathlib import Path

from api.errors import STATUS_BY_REFUSAL
from conversations import actions, protocol
from conversations.consumers import SOCKET_CODES

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = [
    *sorted((ROOT / "api").glob("*.py")),
    ROOT / "conversations" / "views.py",
    ROOT / "accounts" / "views.py",
    ROOT / "review" / "views.py",
]
NOTIFYING = ("group_send", "group_add")


def notifying_calls(path: Path) -> list[str]:
    """`file:line name` of each call in `path` that tells the tabs: a channel-layer send, a
    `*_notify` helper, or anything of `conversations.live`."""
    found = []
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names]
            module = node.module if isinstance(node, ast.ImportFrom) else ""
            if (
                module == "conversations.live"
                or "conversations.live" in names
                or (module == "conversations" and "live" in names)
            ):
                found.append(f"{where}:{node.lineno} imports conversations.live")
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in NOTIFYING or name.endswith("_notify"):
                found.append(f"{where}:{node.lineno} calls {name}")
    return found


def test_no_adapter_tells_the_tabs_itself():
    found = [call for path in ADAPTERS for call in notifying_calls(path)]
    assert found == [], "an action tells the tabs, not its adapter:\n" + "\n".join(found)


def test_the_check_sees_a_notify_call(tmp_path):
    adapter = ROOT / "api" / "_probe_adapter.py"
    adapter.write_text(
        "from conversations import live\n\nasync def f():\n    await live.title_changed_notify(1, 'x')\n"
    )
    try:
        assert len(notifying_calls(adapter)) == 2
    finally:
        adapter.unlink()


def test_every_refusal_has_a_status_and_a_socket_code():
    assert set(STATUS_BY_REFUSAL) == set(actions.CODES)
    for code in actions.CODES:
        assert SOCKET_CODES.get(code, code) in protocol.DIRECT_ERROR_CODES, code
