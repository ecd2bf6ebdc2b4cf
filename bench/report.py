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
    "client_cores",
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
    ("server", 9),
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
            server_of(r),
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


def server_of(record: dict[str, Any]) -> str:
    """The server a row or saturation was measured on (results from before the comparison: daphne)."""
    return record.get("server") or "daphne"


def _find(rows: list[dict[str, Any]], **key: Any) -> dict[str, Any] | None:
    server = key.pop("server", None)
    return next(
        (r for r in rows if all(r[k] == v for k, v in key.items()) and (server is None or server_of(r) == server)),
        None,
    )


SATURATION_TARGET = 3000.0
PRODUCTION_SERVER = "uvicorn"


def common_step(saturations: list[dict[str, Any]]) -> float | None:
    """The highest offered load every one of these saturations passed: where their CPU compares."""
    passed = [{step["offered_tokens_per_s"] for step in sat["steps"] if step["passed"]} for sat in saturations]
    shared = set.intersection(*passed) if passed else set()
    return max(shared) if shared else None


def step_at(saturation: dict[str, Any], offered: float | None) -> dict[str, Any] | None:
    """The passing step of a saturation at this offered load."""
    return next((s for s in saturation["steps"] if s["passed"] and s["offered_tokens_per_s"] == offered), None)


def server_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The server comparison: per (layer, server) the saturation, its p99 and CPU per 1,000 relayed
    tokens at the highest step all servers of that layer passed, and the 60 tok/s x 3 tabs latency."""
    rows = []
    by_layer: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for sat in results.get("saturation", []):
        by_layer.setdefault((sat["layer"], sat["per_run_tokens_per_s"]), []).append(sat)
    for (layer, per_run), sats in by_layer.items():
        shared = common_step(sats)
        for sat in sats:
            step = step_at(sat, shared)
            latency = _find(results["configs"], system="product", layer=layer, rate=60, tabs=3, server=server_of(sat))
            rows.append(
                {
                    "layer": layer,
                    "per_run": per_run,
                    "server": server_of(sat),
                    "max_tokens_per_s": sat["max_passing_tokens_per_s"],
                    "p99_at_max_ms": sat.get("p99_ms_at_max"),
                    "cpu_at_max": sat.get("cpu_s_per_1k_at_max"),
                    "common_offered": shared,
                    "p99_at_common_ms": step["p99_ms"] if step else None,
                    "cpu_at_common": step["cpu_s_per_1k_tokens"] if step else None,
                    "lost": sum(s["lost_live"] for s in sat["steps"] if s["passed"]),
                    "p99_60x3_ms": latency["p99_ms"] if latency else None,
                    "p50_60x3_ms": latency["p50_ms"] if latency else None,
                    "cpu_60x3": latency["cpu_s_per_1k_tokens"] if latency else None,
                }
            )
    return rows


SERVER_COLUMNS = (
    ("layer", 7),
    ("/run", 5),
    ("server", 15),
    ("max tok/s", 9),
    ("p99 ms", 7),
    ("cpu s/1k", 8),
    ("at tok/s", 8),
    ("p99 ms", 7),
    ("cpu s/1k", 8),
    ("lost", 4),
    ("60x3 p50", 8),
    ("60x3 p99", 8),
    ("cpu s/1k", 8),
)


def _server_cells(row: dict[str, Any]) -> list[str]:
    return [
        row["layer"],
        f"{row['per_run']:g}",
        row["server"],
        _num(row["max_tokens_per_s"], 0),
        _num(row["p99_at_max_ms"], 1),
        _num(row["cpu_at_max"], 3),
        _num(row["common_offered"], 0),
        _num(row["p99_at_common_ms"], 1),
        _num(row["cpu_at_common"], 3),
        str(row["lost"]),
        _num(row["p50_60x3_ms"], 2),
        _num(row["p99_60x3_ms"], 2),
        _num(row["cpu_60x3"], 2),
    ]


def server_table(results: dict[str, Any]) -> str:
    """Saturation (max tok/s relayed to 3 tabs, p99 < 100 ms, nothing lost) and CPU per 1,000 relayed
    tokens, per layer and server: at each one's maximum, and at the highest load all passed."""
    rows = server_rows(results)
    if not rows:
        return ""
    head = "servers: saturation (max; at the highest load all passed) and 60 tok/s x 3 tabs"
    lines = [head, "  ".join(name.rjust(width) for name, width in SERVER_COLUMNS)]
    for row in rows:
        cells = _server_cells(row)
        lines.append("  ".join(cell.rjust(width) for cell, (_n, width) in zip(cells, SERVER_COLUMNS, strict=True)))
    return "\n".join(lines)


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
        label = f"saturation ({sat['layer']}, {server_of(sat)}, {sat['per_run_tokens_per_s']:g} tok/s per run, 3 tabs)"
        # Met when a step offering the target passed (p99, nothing lost, the model at its pace): what it
        # relayed is measured from the model's own pace, which reads a hair under nominal (99.97 for 100).
        offered = sat.get("max_passing_offered", best)
        out.append(
            _target(
                f"{label}: >= {SATURATION_TARGET:,.0f} tok/s, p99 < 100 ms, nothing lost "
                f"(relayed; highest passing step {offered:,.0f} offered)",
                best,
                offered >= SATURATION_TARGET,
            )
        )
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
    for t in (results.get("ttft") or {}).get("targets", []):
        unit = f" {t['unit']}" if t.get("unit") else ""
        out.append(_target(f"first token: {t['name']} (target {t['target']}{unit})", t["value"], t["met"]))
    cluster = results.get("cluster") or {}
    if cluster.get("two"):
        two, one = cluster["two"], cluster["one"]
        ok = two["lost_live"] == 0 and two["exact"] and two["p99_ms"] < 100
        out.append(
            _target(
                f"two processes (PostgreSQL + Redis pubsub), {cluster['offered_tokens_per_s']:g} tok/s: "
                f"nothing lost, p99 < 100 ms (one process: p99 {_num(one['p99_ms'], 1)} ms)",
                two["p99_ms"],
                ok,
            )
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
            f"saturation {sat['layer']} {server_of(sat)} ({sat['per_run_tokens_per_s']:g}/run): "
            f"max {sat['max_passing_tokens_per_s']} tok/s relayed to 3 tabs, "
            f"cpu {_num(sat.get('cpu_s_per_1k_at_max'), 3)} s/1k there [{steps}]"
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
    cluster = results.get("cluster") or {}
    for name in ("one", "two"):
        for step in cluster.get("steps", {}).get(name, []):
            lines.append(
                f"{name} process{'es' if name == 'two' else ''} (PostgreSQL + Redis pubsub), "
                f"{step['offered_tokens_per_s']:g} tok/s offered: {_num(step['relayed_tokens_per_s'], 0)} relayed, "
                f"p99 {_num(step['p99_ms'], 1)} ms, lost {step['lost_live']}, "
                f"server cpu {_num(step['cpu_s_per_1k_tokens'], 2)} s/1k, "
                f"load generator {_num(step['client_cores'], 2)} cores, {'ok' if step['passed'] else 'FAIL'}"
            )
    counts = cluster.get("counts") or {}
    if counts:
        lines.append(
            f"per answer: {counts['sql_total_per_answer']} SQL statements {counts['sql_per_answer']}, "
            f"PostgreSQL {counts['pg_per_answer']}; Redis {counts['redis_total_per_token']} commands per token"
        )
    for t in results.get("targets", []):
        verdict = {True: "MET", False: "MISSED", None: "not measured"}[t["met"]]
        lines.append(f"[{verdict:>12}] {t['target']}: {_num(t['measured'], 2)}")
    return lines


def save(results: dict[str, Any], path: Path = RESULTS_PATH) -> None:
    """Write the results as JSON."""
    path.write_text(json.dumps(results, indent=1, default=float) + "\n")


def markdown(results: dict[str, Any]) -> str:
    """The configurations, the server comparison and the verdicts as Markdown, for docs/benchmarks.md."""
    head = [name for name, _width in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table(results["configs"]).splitlines()[1:]:
        lines.append("| " + " | ".join(row.split()) + " |")
    rows = server_rows(results)
    if rows:
        head = [name for name, _width in SERVER_COLUMNS]
        lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(_server_cells(row)) + " |" for row in rows]
    lines += ["", *(f"- {line}" for line in summary_lines(results))]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS_PATH
    print(markdown(json.loads(source.read_text())))
