"""`manage.py rehearse_migrations` on PostgreSQL, and the message tree's migration (0008) on 50k
messages: reads of messages no longer wait for it (they waited 18.7 s when it was one transaction).

Each test gets a throwaway database; the command runs as operators run it, in its own process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command

from conversations.management.commands.rehearse_migrations import (
    COPY_OR_IN_PLACE,
    NOT_POSTGRES,
    NOTHING_TO_APPLY,
    SEED_OUT_OF_RANGE,
    THRESHOLD_OUT_OF_RANGE,
    VERDICT_OK,
    VERDICT_STALL,
)
from tests.live_server import postgres_database
from tests.services import require_postgres

ROOT = Path(__file__).resolve().parents[2]
TREE = "conversations.0008_message_tree"
MESSAGES = 50_000
CONVERSATIONS = 5_000
BLOCKED_READ_BOUND = 2.0
"""Seconds: well under the 18.7 s of the single transaction, and safe on a loaded two-core machine."""


@pytest.fixture
def database_url() -> Iterator[str]:
    url, drop = postgres_database(require_postgres())
    yield url
    drop()


def environment(database_url: str) -> dict[str, str]:
    """The production settings on the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "OPENAI_"))}
    return {**env, "DJANGO_SETTINGS_MODULE": "chatsite.settings", "DJANGO_SECRET_KEY": "tests-only",
            "DATABASE_URL": database_url}  # fmt: skip


def manage(database_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment(database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


def table(output: str) -> dict[str, tuple[float, float, float, str]]:
    """The rehearsal's rows: migration -> (seconds, longest blocked read, longest blocked write, verdict)."""
    rows = {}
    for line in output.splitlines():
        if match := re.fullmatch(r"(\S+\.\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(.+)", line):
            name, seconds, read, write, verdict = match.groups()
            rows[name] = (float(seconds), float(read), float(write), verdict)
    return rows


def seed_before_the_tree(database_url: str) -> None:
    """50k messages in 5k conversations on the schema before 0008, with ids interleaved across
    conversations and times out of id order (some shared), as raw SQL: about a second."""
    with psycopg.connect(database_url) as db:
        owner = db.execute(
            "INSERT INTO auth_user (password, last_login, is_superuser, username, first_name, last_name, email,"
            " is_staff, is_active, date_joined) VALUES ('!', now(), false, 'seed', '', '', '', false, true, now())"
            " RETURNING id"
        ).fetchone()[0]
        db.execute(
            "INSERT INTO conversations_conversation (owner_id, title, title_set_by_user, assistant_id, created,"
            " updated) SELECT %s, 'seeded ' || n, false, 'arithmetic', now(), now() FROM generate_series(1, %s) AS n",
            [owner, CONVERSATIONS],
        )
        db.execute(
            "INSERT INTO conversations_message (conversation_id, role, content, status, run_id, tool_steps, usage,"
            " model, error, worker, stop_requested, created)"
            " SELECT c.id, CASE WHEN mod(n, 2) = 0 THEN 'user' ELSE 'assistant' END, 'message ' || n,"
            " 'completed', '', '[]', '{}', '', '', '', false,"
            " timestamp '2026-01-01' + (mod(n * 7919, %s) / 10) * interval '1 second'"
            " FROM generate_series(0, %s - 1) AS n"
            " JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM conversations_conversation) AS c"
            " ON c.k = mod(n, %s)",
            [MESSAGES, MESSAGES, CONVERSATIONS],
        )


def chained_one_update_per_row(messages: list[tuple]) -> tuple[dict[int, int | None], dict[int, int]]:
    """The first 0008's rule: in each conversation, by (created, id), each message's parent is the
    one before it, and the last is the leaf."""
    by_conversation = defaultdict(list)
    for message_id, conversation_id, created, _ in messages:
        by_conversation[conversation_id].append((created, message_id))
    parents, leaves = {}, {}
    for conversation_id, ordered in by_conversation.items():
        ids = [message_id for _, message_id in sorted(ordered)]
        parents.update(zip(ids, [None, *ids[:-1]], strict=True))
        leaves[conversation_id] = ids[-1]
    return parents, leaves


class ReadProbe(threading.Thread):
    """`SELECT 1 FROM conversations_message LIMIT 1` every 50 ms: the longest any of them took."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self.database_url, self.stopping = database_url, threading.Event()
        self.reads, self.longest = 0, 0.0

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as db:
            while not self.stopping.wait(0.05):
                started = time.monotonic()
                db.execute("SELECT 1 FROM conversations_message LIMIT 1")
                self.reads, self.longest = self.reads + 1, max(self.longest, time.monotonic() - started)


@pytest.mark.postgres
def test_the_tree_migration_on_50k_messages_blocks_no_read_and_ends_as_before(database_url):
    manage(database_url, "migrate", "conversations", "0007")
    seed_before_the_tree(database_url)
    probe = ReadProbe(database_url)
    probe.start()

    output = manage(database_url, "rehearse_migrations", "--in-place").stdout
    probe.stopping.set()
    probe.join()

    _, blocked_read, blocked_write, verdict = table(output)[TREE]
    assert probe.reads > 20 and probe.longest < BLOCKED_READ_BOUND, output
    assert (blocked_read < BLOCKED_READ_BOUND, blocked_write < BLOCKED_READ_BOUND, verdict) == (True, True, VERDICT_OK)
    with psycopg.connect(database_url) as db:
        messages = db.execute("SELECT id, conversation_id, created, parent_id FROM conversations_message").fetchall()
        leaves = dict(db.execute("SELECT id, leaf_id FROM conversations_conversation").fetchall())
    parents, expected_leaves = chained_one_update_per_row(messages)
    assert len(messages) == MESSAGES and len(leaves) == CONVERSATIONS
    assert {message_id: parent for message_id, _, _, parent in messages} == parents
    assert leaves == expected_leaves


@pytest.mark.postgres
def test_a_read_held_open_during_the_release_stalls_it_and_the_rehearsal_says_so(database_url):
    """The ALTER of 0008 waits for a transaction that read messages; every read after it waits too."""
    manage(database_url, "migrate", "conversations", "0007")
    with psycopg.connect(database_url) as report:
        report.execute("SELECT count(*) FROM conversations_message")  # its transaction stays open
        rehearsal = subprocess.Popen(
            [sys.executable, "manage.py", "rehearse_migrations", "--in-place"],
            cwd=ROOT,
            env=environment(database_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with psycopg.connect(database_url, autocommit=True) as watcher:
            waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'conversations_message'::regclass"
            deadline = time.monotonic() + 60
            while watcher.execute(waiting).fetchone()[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        time.sleep(1.5)
    stdout, stderr = rehearsal.communicate(timeout=60)

    _, blocked_read, blocked_write, verdict = table(stdout)[TREE]
    assert rehearsal.returncode == 1, stdout + stderr
    assert (blocked_read > 1.0, blocked_write > 1.0, verdict) == (True, True, VERDICT_STALL)
    assert "1 migration(s) would stall the chat" in stderr
    assert all(row[3] == VERDICT_OK for name, row in table(stdout).items() if name != TREE)


@pytest.mark.postgres
def test_the_rehearsal_on_a_copy_leaves_the_source_as_it_was(database_url):
    name = database_url.rsplit("/", 1)[1]
    assert manage(database_url, "rehearse_migrations", check=False).stderr.strip().endswith(COPY_OR_IN_PLACE)
    seeded = manage(database_url, "rehearse_migrations", "--in-place", "--migrate-back-to", "conversations", "0007",
                    "--seed-messages", "200").stdout  # fmt: skip
    assert "Seeded 200 messages." in seeded and table(seeded)[TREE][3] == VERDICT_OK
    assert manage(database_url, "rehearse_migrations", "--in-place").stdout.strip() == NOTHING_TO_APPLY

    copied = manage(database_url, "rehearse_migrations", "--copy-from", name, "--migrate-back-to", "conversations",
                    "0006").stdout  # fmt: skip

    source, copy = re.search(r"Copied (\S+) to (\S+)\.", copied).groups()
    rows = table(copied)
    assert list(rows)[:2] == ["conversations.0007_message_role_created_index", TREE]
    assert {row[3] for row in rows.values()} == {VERDICT_OK}
    with psycopg.connect(database_url) as db:
        chained = db.execute("SELECT count(parent_id) FROM conversations_message").fetchone()[0]
        applied = db.execute("SELECT count(*) FROM django_migrations WHERE name = '0008_message_tree'").fetchone()[0]
        kept = db.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [copy]).fetchone()[0]
    assert (source, chained, applied, kept) == (name, 200 - 20, 1, 0)


def test_sqlite_is_not_rehearsed(db):
    with pytest.raises(CommandError, match=NOT_POSTGRES.format(vendor="sqlite")):
        call_command("rehearse_migrations", "--in-place")


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (["--seed-messages", "-1"], SEED_OUT_OF_RANGE),
        (["--seed-messages", "10000001"], SEED_OUT_OF_RANGE),
        (["--threshold", "0"], THRESHOLD_OUT_OF_RANGE),
        (["--threshold", "86400"], THRESHOLD_OUT_OF_RANGE),
    ],
)
def test_out_of_bound_options_are_refused_before_anything_runs(db, arguments, refusal):
    with pytest.raises(CommandError) as refused:
        call_command("rehearse_migrations", "--in-place", *arguments)
    assert str(refused.value) == refusal
