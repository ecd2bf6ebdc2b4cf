"""The browser's protocol (`static/chat/protocol.js`) says what the server's does, field for field.

The server declares run events in `agent_runtime/events.py` and everything else on the socket in
`conversations/protocol.py`; `tests/js/dump_protocol.mjs` prints the browser's declarations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from agent_runtime import events
from conversations import protocol

ROOT = Path(__file__).resolve().parent.parent
DUMP = ROOT / "tests" / "js" / "dump_protocol.mjs"


def server_side() -> dict:
    """The server's declarations, in the shape the browser's dump has."""
    common = {"type", "run_id", "seq"}
    return {
        "EVENT_TYPES": sorted(events.SCHEMAS),
        "EVENT_FIELDS": {
            name: {
                "required": sorted(set(schema.__required_keys__) - common),
                "optional": sorted(schema.__optional_keys__),
            }
            for name, schema in events.SCHEMAS.items()
        },
        "COMMON_FIELDS": sorted(common),
        "DONE_STATUSES": sorted(events.DONE_STATUSES),
        "RUN_ERROR": sorted(getattr(events, name) for name in dir(events) if name.startswith("ERROR_")),
        "SERVER_FRAME": sorted(protocol.SERVER_FRAME_TYPES),
        "CLIENT": sorted(protocol.CLIENT_FRAME_TYPES),
        "DIRECT_ERROR": sorted(protocol.DIRECT_ERROR_CODES),
        "CLOSE": protocol.CLOSE_CODES,
    }


def browser_side(dump: dict) -> dict:
    """The browser's declarations, normalised like `server_side`."""
    return {
        "EVENT_TYPES": sorted(dump["EVENT"].values()),
        "EVENT_FIELDS": {
            name: {"required": sorted(fields["required"]), "optional": sorted(fields["optional"])}
            for name, fields in dump["EVENT_FIELDS"].items()
        },
        "COMMON_FIELDS": sorted(dump["COMMON_FIELDS"]),
        "DONE_STATUSES": sorted(dump["DONE_STATUSES"]),
        "RUN_ERROR": sorted(dump["RUN_ERROR"].values()),
        "SERVER_FRAME": sorted(dump["SERVER_FRAME"].values()),
        "CLIENT": sorted(dump["CLIENT"].values()),
        "DIRECT_ERROR": sorted(dump["DIRECT_ERROR"].values()),
        "CLOSE": dump["CLOSE"],
    }


def node_dump() -> dict:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is needed to read static/chat/protocol.js")
        pytest.skip("node is not installed: cannot read static/chat/protocol.js")
    done = subprocess.run([node, str(DUMP)], capture_output=True, text=True, timeout=30, check=True, cwd=ROOT)
    return json.loads(done.stdout)


@pytest.mark.parametrize("part", sorted(server_side()))
def test_the_browser_declares_what_the_server_declares(part):
    assert browser_side(node_dump())[part] == server_side()[part]


def test_a_field_renamed_on_one_side_only_is_caught():
    dump = node_dump()
    dump["EVENT_FIELDS"]["token"]["required"] = ["txt"]
    assert browser_side(dump)["EVENT_FIELDS"] != server_side()["EVENT_FIELDS"]
