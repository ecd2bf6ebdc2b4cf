"""The mechanics of `manage.py rehearse_migrations`: copy a PostgreSQL database, seed messages on
any historical state of the models, and probe how long a statement waits for the table's locks."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

import psycopg
from django.apps.registry import Apps
from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection
from psycopg.conninfo import conninfo_to_dict, make_conninfo

COPY_FAILED = "Copying {source} failed: {error}"
PROBE_INTERVAL = 0.05
PROBE_STATEMENT_TIMEOUT = "1s"
"""A waiting probe is cancelled and re-sent each second (its wait keeps counting), so it can stop."""
MESSAGES_PER_CONVERSATION = 10
LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "options", "connect_timeout", "service")


def server_conninfo(dbname: str, *, password: bool = True) -> str:
    """A libpq connection string to `dbname` on the configured server; for a program, without the
    password (it gets PGPASSWORD: a command line is visible to every user of the machine)."""
    database = connection.settings_dict
    options = {k: v for k, v in database.get("OPTIONS", {}).items() if k in LIBPQ_OPTIONS}
    return make_conninfo(
        dbname=dbname,
        user=database["USER"] or None,
        password=(database["PASSWORD"] or None) if password else None,
        host=database["HOST"] or None,
        port=database["PORT"] or None,
        **options,
    )


def administer(sql: str) -> None:
    """Run `sql` (CREATE or DROP DATABASE) from the configured database."""
    with psycopg.connect(server_conninfo(connection.settings_dict["NAME"]), autocommit=True) as admin:
        admin.execute(sql)


def copy_database(source: str) -> str:
    """Copy `source` (a URL or conninfo, or a database name on the configured server) next to the
    configured database; the copy's name."""
    source_conninfo = source if ("://" in source or "=" in source) else server_conninfo(source, password=False)
    source_name = str(conninfo_to_dict(source_conninfo).get("dbname", "db"))
    copy = f"rehearsal_{re.sub(r'[^a-z0-9_]', '_', source_name.lower())[:30]}_{uuid.uuid4().hex[:8]}"
    administer(f'CREATE DATABASE "{copy}"')
    password = connection.settings_dict["PASSWORD"]
    environment = {**os.environ, **({"PGPASSWORD": password} if password else {})}
    with tempfile.TemporaryFile() as dump_errors:
        dump = subprocess.Popen(
            ["pg_dump", "--no-owner", "--no-privileges", f"--dbname={source_conninfo}"],
            stdout=subprocess.PIPE,
            stderr=dump_errors,
            env=environment,
        )
        restore = subprocess.Popen(
            ["psql", "--quiet", "--set=ON_ERROR_STOP=1", f"--dbname={server_conninfo(copy, password=False)}"],
            stdin=dump.stdout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=environment,
        )
        dump.stdout.close()  # psql's alone now: if psql stops, pg_dump stops too
        restore_errors = restore.communicate()[1]
        if dump.wait() != 0 or restore.returncode != 0:
            dump_errors.seek(0)
            error = (dump_errors.read() or restore_errors).decode().strip()
            drop_database(copy)
            raise CommandError(COPY_FAILED.format(source=source, error=error))
    return copy


def drop_database(name: str) -> None:
    """Drop the copy `name`, closing whatever is connected to it."""
    connection.close()
    administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def insert_series(model: type, rows: str, rows_params: list[object], expressions: dict[str, tuple[str, list]]) -> None:
    """INSERT one row per row of `rows` (`n` numbers them): `expressions` give some columns, with their
    parameters; the others get the field's default, NULL or now(), so that the rows fit any historical
    state of the model."""
    columns, values, params = [], [], []
    for model_field in model._meta.concrete_fields:
        if model_field.primary_key:
            continue
        columns.append(connection.ops.quote_name(model_field.column))
        if model_field.attname in expressions:
            sql, sql_params = expressions[model_field.attname]
            values.append(sql)
            params.extend(sql_params)
        elif getattr(model_field, "auto_now", False) or getattr(model_field, "auto_now_add", False):
            values.append("now()")
        elif model_field.null and not model_field.has_default():
            values.append("NULL")
        else:
            values.append("%s")
            params.append(model_field.get_db_prep_save(model_field.get_default(), connection))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM {rows}",
            [*params, *rows_params],
        )


def seed_messages(apps: Apps, count: int) -> None:
    """`count` messages from a new user, ten to a conversation, interleaved as concurrent chats write them."""
    user = apps.get_model(settings.AUTH_USER_MODEL).objects.create(
        username=f"rehearsal-{uuid.uuid4().hex[:8]}", password="!"
    )
    conversations = -(-count // MESSAGES_PER_CONVERSATION)
    conversation_model = apps.get_model("conversations", "Conversation")
    insert_series(
        conversation_model,
        "generate_series(1, %s) AS n",
        [conversations],
        {"owner_id": ("%s", [user.pk]), "title": ("'Rehearsal ' || n", [])},
    )
    # Message n goes to conversation n mod C, as its (n / C)th message: ids interleave across conversations.
    insert_series(
        apps.get_model("conversations", "Message"),
        "generate_series(0, %s - 1) AS n JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k "
        f"FROM {connection.ops.quote_name(conversation_model._meta.db_table)} WHERE owner_id = %s) AS c "
        "ON c.k = mod(n, %s)",
        [count, user.pk, conversations],
        {
            "conversation_id": ("c.id", []),
            "role": ("CASE WHEN mod(n / %s, 2) = 0 THEN 'user' ELSE 'assistant' END", [conversations]),
            "content": ("'Rehearsal message ' || n", []),
            # Two messages of a conversation a second: some share a time, and their ids decide.
            "created": ("now() - interval '1 day' + (n / %s / 2) * interval '1 second'", [conversations]),
        },
    )


@dataclass
class Probe:
    """Runs `sql` every PROBE_INTERVAL on its own connection; records when each run started and how
    long it took, cancelled and re-sent tries included."""

    conninfo: str
    sql: str
    samples: list[tuple[float, float]] = field(default_factory=list)
    error: psycopg.Error | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        """Start probing; returns once connected, so that no migration runs unwatched."""
        self.thread = threading.Thread(target=self.run, name=f"probe: {self.sql}", daemon=True)
        self.thread.start()
        self.ready.wait()

    def run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as probe:
                probe.execute(f"SET statement_timeout = '{PROBE_STATEMENT_TIMEOUT}'")
                self.ready.set()
                while not self.stopping.is_set():
                    started = time.monotonic()
                    while True:
                        try:
                            probe.execute(self.sql)
                            break
                        except psycopg.errors.QueryCanceled:
                            if self.stopping.is_set():
                                break
                    self.samples.append((started, time.monotonic() - started))
                    self.stopping.wait(PROBE_INTERVAL)
        except psycopg.Error as error:  # a table gone, a connection lost: reported, never read as "no wait"
            self.error = error
        finally:
            self.ready.set()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join()

    def longest(self, since: float, until: float) -> float:
        """The longest wait of the probes sent in [since, until)."""
        return max((waited for started, waited in self.samples if since <= started < until), default=0.0)
