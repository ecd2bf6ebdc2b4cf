"""What a bench run measures: the full matrix (`make bench`) or the quick one (`make bench-quick`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bench.servers import LAYERS


@dataclass(frozen=True)
class Group:
    """Product configurations served by one process: a layer, a model pace, tab counts.

    On the in-memory layer the two references are measured beside the product, repetition
    by repetition (they use no channel layer, so one layer is enough for them).
    """

    layer: str
    rate: float
    tabs: tuple[int, ...]

    @property
    def with_references(self) -> bool:
        """Whether the lesson and the floor run beside the product on this process."""
        return self.layer == "memory"


@dataclass(frozen=True)
class LoadPart:
    """Many conversations on one process: idle memory, the scale run and/or the saturation steps."""

    layer: str
    rate: float
    idle: bool = False
    scale: bool = False
    saturation: bool = False


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

    def without_redis(self) -> Plan:
        """The same plan on the in-memory layer only (Redis is not there)."""
        return replace(
            self,
            groups=tuple(g for g in self.groups if g.layer == "memory"),
            load=tuple(part for part in self.load if part.layer == "memory"),
        )


FULL = Plan(
    reps=5,
    groups=tuple(
        Group(layer, rate, tabs)
        for rate, tabs in ((60, (1, 3, 10)), (300, (1, 3, 10)), (1000, (10,)), (0, (1, 3, 10)))
        for layer in LAYERS
    ),
    load=(
        LoadPart("core", 30, idle=True),
        LoadPart("pubsub", 30, scale=True),
        LoadPart("core", 100, saturation=True),
        LoadPart("pubsub", 100, saturation=True),
        LoadPart("core", 1000, saturation=True),
        LoadPart("memory", 100, idle=True, saturation=True),
    ),
    saturation_totals=(200, 400, 600, 800, 1000, 1200, 1600, 2000, 3000, 4000, 6000, 8000, 10000, 12000),
    saturation_tokens=300,
    scale_conversations=100,
    scale_reps=1,
    idle_connections=500,
)

QUICK = Plan(
    reps=3,
    groups=(
        Group("memory", 60, (3,)),
        Group("memory", 1000, (10,)),
        Group("core", 0, (10,)),
    ),
    load=(LoadPart("memory", 30, idle=True, scale=True, saturation=True),),
    saturation_totals=(150, 300, 600),
    saturation_tokens=100,
    scale_conversations=10,
    scale_reps=1,
    idle_connections=100,
    quick=True,
)
