"""Reduce repetitions to medians, compare with the references, check the targets, print and save."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from statistics import median
from typing import Any

from bench.scenarios import RepResult

MEDIAN_FIELDS = (
    "p50_ms",
    "p99_ms",
    "tokens_per_s",
    "group_sends_per_token",
    "frames_per_token_per_tab",
    "cpu_s_per_1k_tokens",
    "peak_rss_mib",
    "start_ms",
    "others_cores",
)
SUM_FIELDS = ("lost_live", "lost", "doubled", "duplicates", "reordered", "refused", "unfinished")
RESULTS_PATH = Path(__file__).resolve().parent / "results.json"


def summarise(system: str, layer: str, rate: float, tabs: int, reps: list[RepResult]) -> dict[str, Any]:
    """One configuration: the median of each figure over its repetitions, the sum of every loss."""
    row: dict[str, Any] = {"system": system, "layer": layer, "rate": rate, "tabs": tabs, "reps": len(reps)}
    for name in MEDIAN_FIELDS:
        values = [getattr(rep, name) for rep in reps if not math.isnan(getattr(rep, name))]
        row[name] = round(median(values), 4) if values else None
    for name in SUM_FIELDS:
        row[name] = sum(getattr(rep, name) for rep in reps)
    row["exact"] = all(rep.exact for rep in reps)
    row["repetitions"] = [asdict(rep) for rep in reps]
    return row


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Product p99 over the lesson's and over the floor's, measured at the same pace and tab count."""
    refs = {(r["system"], r["rate"], r["tabs"]): r for r in rows if r["system"] != "product"}
    for row in rows:
        if row["system"] != "product":
            continue
        for ref in ("lesson", "floor"):
            other = refs.get((ref, row["rate"], row["tabs"]))
            ok = other and other["p99_ms"] and row["p99_ms"] is not None
            row[f"p99_vs_{ref}"] = round(row["p99_ms"] / other["p99_ms"], 3) if ok else None


def _rate(rate: float) -> str:
    return "max" if rate == 0 else f"{rate:g}"


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


COLUMNS = (
    ("system", 8),
    ("layer", 7),
    ("tok/s", 6),
    ("tabs", 4),
    ("p50 ms", 7),
    ("p99 ms", 8),
    ("deliv/s", 8),
    ("sends/tok", 9),
    ("frm/tok/tab", 11),
    ("cpu s/1k", 8),
    ("rss MiB", 7),
    ("lost live/sync", 14),
    ("dup", 4),
    ("fail", 4),
    ("exact", 5),
    ("p99/lesson", 10),
    ("p99/floor", 9),
    ("noise", 5),
)


def table(rows: list[dict[str, Any]]) -> str:
    """The configurations as one fixed-width table."""
    lines = ["  ".join(name.rjust(width) for name, width in COLUMNS)]
    for r in rows:
        cells = [
            r["system"],
            r["layer"],
            _rate(r["rate"]),
            str(r["tabs"]),
            _num(r["p50_ms"]),
            _num(r["p99_ms"]),
            _num(r["tokens_per_s"], 0),
            _num(r["group_sends_per_token"], 3),
            _num(r["frames_per_token_per_tab"], 3),
            _num(r["cpu_s_per_1k_tokens"], 2),
            _num(r["peak_rss_mib"], 0),
            f"{r['lost_live']}/{r['lost']}",
            str(r["doubled"] + r["duplicates"]),
            str(r["refused"] + r["unfinished"]),
            "yes" if r["exact"] else "NO",
            _num(r.get("p99_vs_lesson"), 3),
            _num(r.get("p99_vs_floor"), 2),
            _num(r["others_cores"], 1),
        ]
        lines.append("  ".join(cell.rjust(width) for cell, (_n, width) in zip(cells, COLUMNS, strict=True)))
    return "\n".join(lines)


def _find(rows: list[dict[str, Any]], **key: Any) -> dict[str, Any] | None:
    return next((r for r in rows if all(r[k] == v for k, v in key.items())), None)


def _target(name: str, measured: Any, met: bool | None) -> dict[str, Any]:
    return {"target": name, "measured": measured, "met": met}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue, with what was measured and whether it is met (None: not measured)."""
    rows = results["configs"]
    out = []
    for layer, limit in (("memory", 2.0), ("core", 5.0), ("pubsub", 5.0)):
        row = _find(rows, system="product", layer=layer, rate=60, tabs=3)
        p99 = row["p99_ms"] if row else None
        out.append(
            _target(f"60 tok/s, 3 tabs, {layer}: p99 <= {limit:g} ms", p99, None if p99 is None else p99 <= limit)
        )
        lesson = row.get("p99_vs_lesson") if row else None
        out.append(
            _target(
                f"60 tok/s, 3 tabs, {layer}: >= 20x lower p99 than the lesson",
                lesson and 1 / lesson,
                None if lesson is None else lesson <= 0.05,
            )
        )
        floor = row.get("p99_vs_floor") if row else None
        out.append(
            _target(
                f"60 tok/s, 3 tabs, {layer}: p99 within 1.5x the floor", floor, None if floor is None else floor <= 1.5
            )
        )
    for rate, tabs in ((1000, 10), (0, 10)):
        for row in (r for r in rows if r["system"] == "product" and r["rate"] == rate and r["tabs"] == tabs):
            failures = row["doubled"] + row["duplicates"] + row["refused"] + row["unfinished"]
            clean = row["exact"] and row["lost_live"] == 0 and failures == 0
            sends = row["group_sends_per_token"]
            label = f"{_rate(rate)} tok/s, {tabs} tabs, {row['layer']}"
            out.append(_target(f"{label}: nothing lost or doubled, text exact", clean, clean))
            out.append(_target(f"{label}: <= 0.2 group sends per token", sends, sends is not None and sends <= 0.2))
    for sat in results.get("saturation", []):
        best = sat["max_passing_tokens_per_s"]
        label = f"saturation ({sat['layer']}, {sat['per_run_tokens_per_s']:g} tok/s per run, 3 tabs)"
        out.append(_target(f"{label}: >= 10,000 tok/s with p99 < 100 ms", best, best >= 10000))
    for sc in results.get("scale", []):
        ok = sc["p99_ms"] <= 20 and sc["lost"] == 0 and sc["reordered"] == 0 and sc["exact"]
        out.append(
            _target(
                f"{sc['conversations']} runs / {sc['tabs']} tabs ({sc['layer']}): p99 <= 20 ms, nothing lost",
                sc["p99_ms"],
                ok,
            )
        )
    for mem in results.get("memory", []):
        out.append(
            _target(f"idle tab memory ({mem['layer']}): <= 100 KiB", mem["kib_per_tab"], mem["kib_per_tab"] <= 100)
        )
    return out


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Saturation, scale, memory and the targets, a line each."""
    lines = []
    for sat in results.get("saturation", []):
        steps = ", ".join(
            f"{s['offered_tokens_per_s']:g}: "
            + ("ok" if s["passed"] else "FAIL " + "; ".join(s["failures"]))
            + f" (p99 {_num(s['p99_ms'], 1)} ms)"
            for s in sat["steps"]
        )
        lines.append(
            f"saturation {sat['layer']} ({sat['per_run_tokens_per_s']:g}/run): "
            f"max {sat['max_passing_tokens_per_s']} tok/s relayed to 3 tabs [{steps}]"
        )
    for sc in results.get("scale", []):
        lines.append(
            f"scale {sc['layer']}: {sc['conversations']} runs x {sc['per_run_tokens_per_s']:g} tok/s, "
            f"{sc['tabs']} tabs: "
            f"p99 {_num(sc['p99_ms'], 1)} ms, lost {sc['lost']}, reordered {sc['reordered']}, exact {sc['exact']}"
        )
    for mem in results.get("memory", []):
        lines.append(
            f"memory {mem['layer']}: {_num(mem['kib_per_tab'], 1)} KiB per idle tab ({mem['connections']} tabs)"
        )
    for t in results.get("targets", []):
        verdict = {True: "MET", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"[{verdict:>12}] {t['target']}: {_num(t['measured'], 2)}")
    return lines


def save(results: dict[str, Any], path: Path = RESULTS_PATH) -> None:
    """Write the results as JSON."""
    path.write_text(json.dumps(results, indent=1, default=float) + "\n")


def markdown(results: dict[str, Any]) -> str:
    """The configurations and the verdicts as Markdown, for docs/benchmarks.md."""
    head = [name for name, _width in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table(results["configs"]).splitlines()[1:]:
        lines.append("| " + " | ".join(row.split()) + " |")
    lines += ["", *(f"- {line}" for line in summary_lines(results))]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_PATH
    print(markdown(json.loads(source.read_text())))
