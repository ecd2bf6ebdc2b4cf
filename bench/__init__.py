"""Benchmark of the live stream: how fast a run's tokens reach every open tab.

`python -m bench.run` starts real daphne processes serving `bench.asgi:application` (the
product plus two reference consumers), drives them with real WebSocket clients and
prints one table; see docs/benchmarks.md.
"""
