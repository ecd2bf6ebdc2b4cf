"""`manage.py purge_conversations [--older-than-days N] [--dry-run]`: delete the conversations nobody has
touched for N days, with everything that belongs to them.

    manage.py purge_conversations --older-than-days 365 --dry-run   # what would go; deletes nothing
    manage.py purge_conversations --older-than-days 365
    manage.py purge_conversations                                   # AGENT_RETENTION_DAYS (0: keep all)

A conversation's last activity is the latest of its update (a new question, a rename), its
messages' times and its feedback's. One whose answer is being written is never deleted. The
deletion is `conversations.deletion`'s, the one every path uses (messages in every version, tool
steps, feedback, approvals; then the runs' event logs in Redis, and the open tabs are told), in
transactions of `--batch-size` conversations, so a large purge never holds one long transaction.
The daily maintenance timer runs it with no option.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.deletion import leftovers_forget_sync, purge_batches, purge_estimate
from conversations.redis_clients import RedisTarget, redis_target

MAX_DAYS = 36500
MAX_BATCH = 5000
DEFAULT_BATCH = 500
BAD_DAYS = "--older-than-days takes a whole number of days from 1 to {max:,}, not {value!r}."
BAD_SETTING = (
    "AGENT_RETENTION_DAYS must be 0 (keep everything) or a whole number of days from 1 to {max:,}, not {value!r}."
)
BAD_BATCH = "--batch-size takes a whole number of conversations from 1 to {max:,}, not {value!r}."
KEEP_EVERYTHING = "AGENT_RETENTION_DAYS is 0: conversations are kept forever, nothing purged."
REDIS_UNREACHABLE = (
    "Redis could not be reached ({target}): the event logs of {runs} run(s) were not deleted, and open tabs "
    "were not told. They expire by themselves (10 minutes after a run ends, 24 hours at most)."
)


def whole_number(value: object, low: int, high: int) -> int | None:
    """`value` (an int, or its decimal digits) when it is a whole number from `low` to `high`, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 6:
            return None
        value = int(text)
    if not isinstance(value, int) or not low <= value <= high:
        return None
    return value


class Command(BaseCommand):
    help = (
        "Delete conversations nobody touched for N days (default AGENT_RETENTION_DAYS; 0 keeps everything), "
        "with their messages, tool steps, feedback, approvals and run event logs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than-days",
            metavar="N",
            help=f"Delete conversations last active more than N days ago (1 to {MAX_DAYS:,}).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Say what would be deleted; delete nothing.")
        parser.add_argument(
            "--batch-size",
            default=DEFAULT_BATCH,
            metavar="B",
            help=f"Conversations per transaction (1 to {MAX_BATCH:,}; default {DEFAULT_BATCH}).",
        )

    def handle(self, *args: object, **options: object) -> None:
        days = self._days(options["older_than_days"])
        if days is None:
            self.stdout.write(KEEP_EVERYTHING)
            return
        batch_size = whole_number(options["batch_size"], 1, MAX_BATCH)
        if batch_size is None:
            raise CommandError(BAD_BATCH.format(max=MAX_BATCH, value=options["batch_size"]))
        cutoff = datetime.now(UTC) - timedelta(days=days)
        when = f"last active before {cutoff:%Y-%m-%d %H:%M} UTC (more than {days} days ago)"
        if options["dry_run"]:
            self._dry_run(cutoff, when)
        else:
            self._purge(cutoff, when, batch_size)

    def _days(self, given: object) -> int | None:
        """The days to keep: the option's, else the setting's (None: the setting keeps everything)."""
        if given is not None:
            days = whole_number(given, 1, MAX_DAYS)
            if days is None:
                raise CommandError(BAD_DAYS.format(max=MAX_DAYS, value=given))
            return days
        setting = settings.AGENT_RETENTION_DAYS
        if setting == 0:
            return None
        days = whole_number(setting, 1, MAX_DAYS)
        if days is None:
            raise CommandError(BAD_SETTING.format(max=MAX_DAYS, value=setting))
        return days

    def _dry_run(self, cutoff: datetime, when: str) -> None:
        estimate = purge_estimate(cutoff)
        self.stdout.write(f"Dry run: conversations {when}.")
        self.stdout.write(
            f"Would delete {estimate.conversations} conversation(s) with {estimate.messages} message(s) "
            f"(every version), of {estimate.users} user(s)."
        )
        if estimate.generating:
            self.stdout.write(f"Would keep {estimate.generating} conversation(s) whose answer is being written now.")
        self.stdout.write("Nothing was deleted.")

    def _purge(self, cutoff: datetime, when: str, batch_size: int) -> None:
        totals = {"conversations": 0, "messages": 0, "feedback": 0, "approvals": 0}
        owners: set[int] = set()
        runs_forgotten = runs_left = 0
        redis_reachable = True
        for deleted in purge_batches(cutoff, batch_size=batch_size):
            for kind, count in deleted.counts.items():
                totals[kind] += count
            owners |= deleted.owner_ids
            if redis_reachable:
                redis_reachable = leftovers_forget_sync(deleted.leftovers)
            if redis_reachable:
                runs_forgotten += len(deleted.leftovers.run_ids)
            else:
                runs_left += len(deleted.leftovers.run_ids)  # not asked again: it would wait as long each time
        self.stdout.write(
            f"Deleted {totals['conversations']} conversation(s) {when}, of {len(owners)} user(s): "
            f"{totals['messages']} message(s), {totals['feedback']} feedback, {totals['approvals']} approval(s)."
        )
        kept = purge_estimate(cutoff).generating
        if kept:
            self.stdout.write(f"Kept {kept} conversation(s) whose answer is being written now.")
        target = redis_target()
        if not redis_reachable:
            self.stderr.write(REDIS_UNREACHABLE.format(target=_where(target), runs=runs_left))
        elif target:
            self.stdout.write(f"Deleted the event logs of {runs_forgotten} run(s) from Redis.")


def _where(target: RedisTarget) -> str:
    """Where Redis was looked for, without a password a URL may hold."""
    if target.sentinels:
        return target.name
    address = urlsplit(target.url)
    return f"{address.hostname}:{address.port or 6379}"
