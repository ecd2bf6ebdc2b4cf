"""Live test deployments, made and taken down in one place.

Every module that serves the product from real processes (`tests.live_server.Deployment`) gets its
deployment from `live_deployment(...)` with its own options, in a fixture of the scope it needs:

    @pytest.fixture(scope="module")
    def deployment():
        with live_deployment(tokens_per_second=200) as deployment:
            yield deployment
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.live_server import Deployment


@contextmanager
def live_deployment(**options: Any) -> Iterator[Deployment]:
    """A deployment made by `Deployment.create(**options)` (its database migrated, no server started
    yet); on the way out, also when its tests failed, its servers are stopped and its database dropped."""
    deployment = Deployment.create(**options)
    try:
        yield deployment
    finally:
        deployment.close()
