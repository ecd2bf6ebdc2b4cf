"""What a bench run measures: the full matrix (`make bench`) or the quick one (`make bench-quick`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.servers import LAYERS, PRODUCTION_SERVER

# The server the product is measured on, then daphne (the one `make run` serves with).
BOTH = (PRODUCTION_SERVER, "daphne")
# Every server and variant compared on the in-memory saturation (full run only).
VARIANTS = (
    PRODUCTION_SERVER,
    "daphne",
    "uvicorn-legacy-ws",
    "uvicorn-wsproto",
    "uvicorn-asyncio",
    "hypercorn",
    "granian",
)


@dataclass(frozen=True)
class Group:
    """Product configurations served by one process per server: a layer, a model pace, tab counts.

    On the in-memory layer the two references are measured beside the product on the first
    server, repetition by repetition (they use no channel layer, so one layer is enough for
    them). With several servers, each serves its own process, all started together, and the
    repetitions take turns between them, so that drift on the machine hits them alike.
    """

    layer: str
    rate: float
    tabs: tuple[int, ...]
    servers: tuple[str, ...] = (PRODUCTION_SERVER,)

    @property
    def with_references(self) -> bool:
        """Whether the lesson and the floor run beside the product on this process."""
        return self.layer == "memory"


@dataclass(frozen=True)
class LoadPart:
    """Many conversations on one process: idle memory, the scale run and/or the saturation steps.

    Saturation with several servers steps them up together: each step runs on every server
    still passing before the next step starts (paired, as the repetitions are).
    """

    layer: str
    rate: float
    idle: bool = False
    scale: bool = False
    saturation: bool = False
    servers: tuple[str, ...] = (PRODUCTION_SERVER,)


@dataclass(frozen=True)
class Plan:
    """Everything one bench run measures."""

    reps: int
    groups: tuple[Group, ...]
    load: tuple[LoadPart, ...]
    saturation_totals: tuple[float, ...]
    saturation_tokens: int
    scale_conversations: int
    scale_reps: int
    idle_connections: int
    tokens: int = 300
    quick: bool = False
    cluster: bool = False
    charts: bool = False

    def only_layers(self, layers: set[str]) -> Plan:
        """The same plan on these channel layers only (the two-process run needs `pubsub`)."""
        return replace(
            self,
            groups=tuple(g for g in self.groups if g.layer in layers),
            load=tuple(part for part in self.load if part.layer in layers),
            cluster=self.cluster and "pubsub" in layers,
        )

    def without_redis(self) -> Plan:
        """The same plan on the in-memory layer only (Redis is not there)."""
        return replace(
            self,
            groups=tuple(g for g in self.groups if g.layer == "memory"),
            load=tuple(part for part in self.load if part.layer == "memory"),
            cluster=False,
        )


def _full_groups() -> tuple[Group, ...]:
    groups = []
    for rate, tabs in ((60, (1, 3, 10)), (300, (1, 3, 10)), (1000, (10,)), (0, (1, 3, 10))):
        for layer in LAYERS:
            if rate == 60:  # the latency target's configuration, on both servers
                groups.append(Group(layer, rate, (3,), servers=BOTH))
                groups.append(Group(layer, rate, tuple(t for t in tabs if t != 3)))
            else:
                groups.append(Group(layer, rate, tabs))
    return tuple(groups)


FULL = Plan(
    reps=5,
    groups=_full_groups(),
    load=(
        LoadPart("core", 30, idle=True),
        LoadPart("pubsub", 30, scale=True),
        LoadPart("memory", 100, idle=True, saturation=True, servers=VARIANTS),
        LoadPart("pubsub", 100, saturation=True, servers=BOTH),
        LoadPart("core", 100, saturation=True, servers=BOTH),
    ),
    saturation_totals=(200, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000, 6000, 8000, 10000),
    saturation_tokens=300,
    scale_conversations=100,
    scale_reps=1,
    idle_connections=500,
    cluster=True,
    charts=True,
)

QUICK = Plan(
    reps=3,
    groups=(
        Group("memory", 60, (3,), servers=BOTH),
        Group("memory", 1000, (10,)),
        Group("core", 0, (10,)),
    ),
    load=(
        LoadPart("memory", 30, idle=True, scale=True),
        LoadPart("memory", 100, saturation=True, servers=BOTH),
        LoadPart("pubsub", 100, saturation=True, servers=BOTH),
    ),
    saturation_totals=(200, 500, 1000, 1500, 2000, 3000),
    saturation_tokens=100,
    scale_conversations=10,
    scale_reps=1,
    idle_connections=100,
    quick=True,
)
