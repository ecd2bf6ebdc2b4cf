"""Charts of a bench run, drawn from `bench/results.json` into `docs/bench-*.png`.

`python -m bench.charts [results.json]` redraws them; the full `make bench` draws them at its end.

- `bench-latency.png`: the added latency's distribution (quantiles of every token in every tab,
  median repetition) of the product, the lesson and the floor at 60 tok/s x 3 tabs, per server.
- `bench-throughput.png`: tokens per second relayed to 3 tabs per conversation, and p99, against
  the offered load, per layer and server (the saturation steps).
- `bench-servers.png`: per server, the highest passing load and the CPU per 1,000 relayed tokens.
- `bench-ttft.png`: time to first token, per configuration (`bench.ttft`).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from statistics import median
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.report import RESULTS_PATH, SATURATION_TARGET, server_of, server_rows
from bench.scenarios import QUANTILES

DOCS = Path(__file__).resolve().parent.parent / "docs"
COLORS = {"product": "#1f77b4", "lesson": "#d62728", "floor": "#2ca02c"}
LAYER_COLORS = {"memory": "#1f77b4", "pubsub": "#ff7f0e", "core": "#9467bd"}
LAYER_STYLES = {"memory": "-", "pubsub": "--", "core": ":"}


def _median_quantiles(row: dict[str, Any]) -> list[float] | None:
    reps = [r.get("latency_quantiles_ms") for r in row.get("repetitions", [])]
    reps = [r for r in reps if r and not any(v is None or math.isnan(v) for v in r)]
    if not reps:
        return None
    return [median(values) for values in zip(*reps, strict=True)]


def latency_chart(results: dict[str, Any], path: Path) -> Path | None:
    """Quantiles of the added latency at 60 tok/s x 3 tabs, in-memory: product (each server), lesson, floor."""
    rows = [r for r in results["configs"] if r["rate"] == 60 and r["tabs"] == 3 and r["layer"] in ("memory", "-")]
    curves = [(r, _median_quantiles(r)) for r in rows]
    curves = [(r, q) for r, q in curves if q]
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    percents = [q * 100 for q in QUANTILES]
    for number, (row, quantiles) in enumerate(curves):
        style = "-" if server_of(row) == curves[0][0].get("server", "daphne") else "--"
        label = f"{row['system']} ({server_of(row)})"
        ax.plot(
            quantiles, percents, style, marker="o", ms=3, color=COLORS[row["system"]], label=label, zorder=3 + number
        )
    ax.set_xscale("log")
    ax.set_xlabel("added latency per token, ms (log scale)")
    ax.set_ylabel("percentile of tokens")
    ax.set_yticks([1, 10, 25, 50, 75, 90, 99])
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("60 tok/s, 3 tabs, in-memory layer: latency distribution (median repetition)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput_chart(results: dict[str, Any], path: Path) -> Path | None:
    """Relayed tok/s and p99 against offered load, per layer and server (saturation steps)."""
    sats = results.get("saturation", [])
    if not sats:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7.5), sharex=True)
    servers = list(dict.fromkeys(server_of(s) for s in sats))
    palette = plt.get_cmap("tab10")
    for sat in sats:
        steps = sat["steps"]
        if not steps:
            continue
        color = palette(servers.index(server_of(sat)) % 10)  # a colour per server, a line style per layer
        style = LAYER_STYLES.get(sat["layer"], "-.")
        label = f"{sat['layer']}, {server_of(sat)}"
        offered = [s["offered_tokens_per_s"] for s in steps]
        relayed = [s["relayed_tokens_per_s"] or 0 for s in steps]
        p99 = [s["p99_ms"] for s in steps]
        top.plot(offered, relayed, style, color=color, marker="o", ms=3, label=label)
        bottom.plot(offered, p99, style, color=color, marker="o", ms=3, label=label)
        failed = [(o, r, p) for o, r, p, s in zip(offered, relayed, p99, steps, strict=True) if not s["passed"]]
        if failed:
            top.scatter([f[0] for f in failed], [f[1] for f in failed], marker="x", color=color, s=40, zorder=5)
            bottom.scatter([f[0] for f in failed], [f[2] for f in failed], marker="x", color=color, s=40, zorder=5)
    most = max(s["offered_tokens_per_s"] for sat in sats for s in sat["steps"])
    top.plot([0, most], [0, most], color="gray", lw=0.8, alpha=0.5, label="relayed = offered")
    top.axvline(SATURATION_TARGET, color="black", lw=0.8, ls=":", label=f"target {SATURATION_TARGET:,.0f} tok/s")
    top.set_ylabel("tok/s relayed (3 tabs each)")
    top.set_title("Saturation: 100 tok/s per run, 3 tabs each (x: step failed; solid memory, dashed pubsub)")
    top.legend(fontsize=7, ncol=2)
    top.grid(True, alpha=0.3)
    bottom.axhline(100, color="black", lw=0.8, ls=":", label="p99 limit 100 ms")
    bottom.set_yscale("log")
    bottom.set_ylabel("p99 added latency, ms (log)")
    bottom.set_xlabel("offered load, tok/s per process")
    bottom.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def servers_chart(results: dict[str, Any], path: Path) -> Path | None:
    """Per (layer, server): the highest passing load, and CPU per 1,000 relayed tokens at the shared step."""
    rows = server_rows(results)
    if not rows:
        return None
    labels = [f"{r['server']}\n{r['layer']}" for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, max(3.0, 0.45 * len(rows) + 1.2)))
    y = range(len(rows))
    colors = [LAYER_COLORS.get(r["layer"], "gray") for r in rows]
    left.barh(y, [r["max_tokens_per_s"] or 0 for r in rows], color=colors)
    left.axvline(SATURATION_TARGET, color="black", lw=0.8, ls=":")
    left.set_yticks(list(y), labels, fontsize=7)
    left.invert_yaxis()
    left.set_xlabel("highest passing load, tok/s (p99 < 100 ms, nothing lost)")
    right.barh(y, [r["cpu_at_common"] or 0 for r in rows], color=colors)
    right.set_yticks(list(y), [""] * len(rows))
    right.invert_yaxis()
    right.set_xlabel("server CPU s per 1,000 relayed tokens (at the load all passed)")
    for axis in (left, right):
        axis.grid(True, axis="x", alpha=0.3)
    fig.suptitle("ASGI servers: saturation per process, 100 tok/s per run, 3 tabs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


TTFT_BARS = (
    ("product_share_p50_ms", "product share p50"),
    ("product_share_p90_ms", "product share p90"),
    ("send_to_first_frame_p50_ms", "send → first frame p50"),
    ("direct_first_token_p50_ms", "direct client p50"),
    ("cold_extra_ms", "first send after start, extra"),
)


def ttft_chart(results: dict[str, Any], path: Path) -> Path | None:
    """Time to first token per configuration: the product's share, send to first frame, the direct client."""
    configs = {k: v for k, v in ((results.get("ttft") or {}).get("configs") or {}).items() if "skipped" not in v}
    if not configs:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(TTFT_BARS)
    names = list(configs)
    for index, (key, label) in enumerate(TTFT_BARS):
        values = [configs[name].get(key) or 0 for name in names]
        xs = [n + (index - (len(TTFT_BARS) - 1) / 2) * width for n in range(len(names))]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(range(len(names)), [n.replace("_", " + ") for n in names])
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.set_title("Time to first token (warm sends; the first after a start apart)")
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_all(results: dict[str, Any], directory: Path = DOCS) -> list[Path]:
    """Every chart the results allow; the paths written."""
    charts = (
        (latency_chart, "bench-latency.png"),
        (throughput_chart, "bench-throughput.png"),
        (servers_chart, "bench-servers.png"),
        (ttft_chart, "bench-ttft.png"),
    )
    written = []
    for draw, name in charts:
        path = draw(results, directory / name)
        if path is not None:
            written.append(path)
    return written


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_PATH
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else DOCS
    for written in draw_all(json.loads(source.read_text()), target):
        print(written)
