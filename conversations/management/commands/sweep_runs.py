"""`manage.py sweep_runs`: mark runs whose server process died as interrupted, once."""

from __future__ import annotations

import asyncio

from django.core.management.base import BaseCommand

from conversations.watchdog import sweep_interrupted_runs


class Command(BaseCommand):
    help = "Mark answers whose server process stopped (no heartbeat) as interrupted and tell their tabs."

    def handle(self, *args: object, **options: object) -> None:
        count = asyncio.run(sweep_interrupted_runs())
        self.stdout.write(f"{count} interrupted run(s) marked.")
