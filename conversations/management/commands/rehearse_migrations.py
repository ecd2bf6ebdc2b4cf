"""`manage.py rehearse_migrations`: apply a release's migrations to a copy, timing each and measuring
how long the chat's reads and writes on the messages table wait behind it.

    manage.py rehearse_migrations --copy-from postgres://chat@db.example.com/chat
    manage.py rehearse_migrations --in-place --migrate-back-to conversations 0007 --seed-messages 50000

With `--copy-from` the source (a URL, or a database name on the configured server) is copied with
`pg_dump | psql` into a new database next to the configured one, which is dropped at the end
(`--keep-copy` keeps it). pg_dump only takes the locks a read takes, so the source may be serving;
`CREATE DATABASE ... TEMPLATE` would need it without a single connection. `--in-place` rehearses on
the configured database itself: one the operator already copied, or a throwaway one.

While each migration runs, two probes on their own connections run every 50 ms: a read
(`SELECT 1 FROM conversations_message LIMIT 1`) and a write that changes no row but takes the
table lock every write takes (`UPDATE ... WHERE false`). A migration whose longest wait for
either passes the threshold (1 s) would stall the chat: the command prints the table and fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection
from django.db.migrations.exceptions import AmbiguityError
from django.db.migrations.executor import MigrationExecutor

from conversations.migration_rehearsal import Probe, copy_database, drop_database, seed_messages, server_conninfo
from conversations.models import Message

VERDICT_OK = "ok"
VERDICT_STALL = "would stall the chat"
NOT_POSTGRES = "Rehearsals measure PostgreSQL's locks: the configured database is {vendor}."
COPY_OR_IN_PLACE = (
    "Say where to rehearse: --copy-from SOURCE (a copy is made and dropped), or --in-place "
    "(the configured database is itself a copy: it is migrated, and seeded if asked)."
)
MAX_SEED_MESSAGES = 10_000_000
MAX_THRESHOLD_SECONDS = 3600.0
SEED_OUT_OF_RANGE = f"--seed-messages takes 0 to {MAX_SEED_MESSAGES:,} messages."
THRESHOLD_OUT_OF_RANGE = f"--threshold takes more than 0 and at most {MAX_THRESHOLD_SECONDS:g} seconds."
STALLS = "{count} migration(s) would stall the chat (a read or write waited over {threshold:g} s)."
NOTHING_TO_APPLY = "No migrations to apply."
NO_MESSAGES_TABLE = "The messages table is not there yet: nothing the chat reads to measure (run migrate)."
NO_SUCH_MIGRATION = "No single migration of {app} starts with {prefix!r}."
PROBE_FAILED = "The probe {sql!r} failed, so no figure can be trusted: {error}"


@dataclass
class Timing:
    """One migration's apply: when it started and finished (time.monotonic())."""

    migration: str
    started: float
    finished: float = 0.0


class Command(BaseCommand):
    help = "Apply unapplied migrations on a copy, timing each and how long reads and writes of messages wait."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--copy-from", metavar="SOURCE", help="A database URL, or a name on the configured server.")
        parser.add_argument("--keep-copy", action="store_true", help="Keep the copy (its name is printed).")
        parser.add_argument("--in-place", action="store_true", help="Rehearse on the configured database itself.")
        parser.add_argument("--migrate-back-to", nargs=2, metavar=("APP", "MIGRATION"), help="First migrate there.")
        parser.add_argument("--seed-messages", type=int, default=0, metavar="N", help="Then add N messages.")
        parser.add_argument("--threshold", type=float, default=1.0, help="Seconds of waiting that stall the chat.")

    def handle(self, *args: object, **options: object) -> None:
        if not 0 <= options["seed_messages"] <= MAX_SEED_MESSAGES:  # type: ignore[operator]
            raise CommandError(SEED_OUT_OF_RANGE)
        if not 0 < options["threshold"] <= MAX_THRESHOLD_SECONDS:  # type: ignore[operator]
            raise CommandError(THRESHOLD_OUT_OF_RANGE)
        if connection.vendor != "postgresql":
            raise CommandError(NOT_POSTGRES.format(vendor=connection.vendor))
        if bool(options["copy_from"]) == bool(options["in_place"]):
            raise CommandError(COPY_OR_IN_PLACE)
        configured = connection.settings_dict["NAME"]
        copy = copy_database(options["copy_from"]) if options["copy_from"] else None
        try:
            if copy:
                connection.close()
                connection.settings_dict["NAME"] = copy
                self.stdout.write(f"Copied {options['copy_from']} to {copy}.")
            self.prepare(options["migrate_back_to"], options["seed_messages"])
            timings, probes = self.rehearse()
        finally:
            if copy:
                connection.close()
                connection.settings_dict["NAME"] = configured
                if options["keep_copy"]:
                    self.stdout.write(f"Kept the copy: {copy}.")
                else:
                    drop_database(copy)
        if timings:
            self.report(timings, probes, options["threshold"])

    def prepare(self, back_to: list[str] | None, seed: int) -> None:
        """Migrate back (or forward) to `back_to`, then seed: the state the rehearsal starts from."""
        executor = MigrationExecutor(connection)
        if back_to:
            app, prefix = back_to
            try:
                target = executor.loader.get_migration_by_prefix(app, prefix)
            except (AmbiguityError, KeyError) as error:
                raise CommandError(NO_SUCH_MIGRATION.format(app=app, prefix=prefix)) from error
            executor.migrate([(app, target.name)])
            executor = MigrationExecutor(connection)
        if seed:
            graph = executor.loader.graph
            applied = [key for key in executor.loader.applied_migrations if key in graph.nodes]
            seed_messages(executor.loader.project_state(applied).apps, seed)
            self.stdout.write(f"Seeded {seed} messages.")

    def rehearse(self) -> tuple[list[Timing], list[Probe]]:
        """Apply every unapplied migration while the probes run; when each started and finished."""
        timings: list[Timing] = []

        def progress(action: str, migration: object = None, fake: bool = False) -> None:
            if action == "apply_start":
                timings.append(Timing(f"{migration.app_label}.{migration.name}", time.monotonic()))
            elif action == "apply_success":
                timings[-1].finished = time.monotonic()

        executor = MigrationExecutor(connection, progress)
        targets = executor.loader.graph.leaf_nodes()
        plan = executor.migration_plan(targets)
        if not plan:
            self.stdout.write(NOTHING_TO_APPLY)
            return [], []
        if Message._meta.db_table not in connection.introspection.table_names():
            raise CommandError(NO_MESSAGES_TABLE)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(Message._meta.db_table)}")
            messages = cursor.fetchone()[0]
        self.stdout.write(
            f"Rehearsing {len(plan)} migration(s) on {connection.settings_dict['NAME']} ({messages} messages)."
        )
        table = connection.ops.quote_name(Message._meta.db_table)
        conninfo = server_conninfo(connection.settings_dict["NAME"])
        probes = [
            Probe(conninfo, f"SELECT 1 FROM {table} LIMIT 1"),
            Probe(conninfo, f"UPDATE {table} SET id = id WHERE false"),
        ]
        for probe in probes:
            probe.start()
        try:
            state = executor.migrate(targets, plan=plan)
            emit_post_migrate_signal(0, False, connection.alias, apps=state.apps, plan=plan)
        finally:
            for probe in probes:
                probe.stop()
        for probe in probes:
            if probe.error is not None:
                raise CommandError(PROBE_FAILED.format(sql=probe.sql, error=probe.error))
        return timings, probes

    def report(self, timings: list[Timing], probes: list[Probe], threshold: float) -> None:
        reads, writes = probes
        width = max(len("migration"), *(len(t.migration) for t in timings))
        self.stdout.write(f"{'migration':<{width}}  seconds  longest blocked read  longest blocked write  verdict")
        stalls = 0
        since = timings[0].started
        for timing in timings:
            read = reads.longest(since, timing.finished)
            write = writes.longest(since, timing.finished)
            stalled = max(read, write) > threshold
            stalls += stalled
            self.stdout.write(
                f"{timing.migration:<{width}}  {timing.finished - timing.started:7.2f}  {read:20.2f}  {write:21.2f}  "
                f"{VERDICT_STALL if stalled else VERDICT_OK}"
            )
            since = timing.finished
        if stalls:
            raise CommandError(STALLS.format(count=stalls, threshold=threshold))
