"""The benchmark's one results table, in Markdown, from `bench/results.json`.

    python -m bench.table                             # print it
    python -m bench.table --write docs/benchmarks.md  # put it between the results markers there

One row per scenario: what was measured (with the references of the same run), the targets that
apply, and whether each was met as the run recorded it (`targets` in the results). A test checks
that docs/benchmarks.md holds this table for the committed results.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
START = "<!-- results:start -->"
END = "<!-- results:end -->"

LAYERS = ("memory", "pubsub", "core")
TTFT_LABELS = {"sqlite_memory": "SQLite + in-memory", "postgres_redis": "PostgreSQL + Redis"}


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,.{digits}f}"


def _rate(rate: float) -> str:
    return "max pace" if rate == 0 else f"{rate:,g} tok/s"


def _server(record: dict[str, Any]) -> str:
    # Results written before servers were compared were all measured on daphne.
    return record.get("server") or "daphne"


def _layer_order(record: dict[str, Any]) -> int:
    return LAYERS.index(record["layer"]) if record["layer"] in LAYERS else len(LAYERS)


def _pretty(text: str) -> str:
    return re.sub(r"(\d)x\b", r"\1×", text.replace("<=", "≤").replace(">=", "≥"))


class _Targets:
    """The run's recorded targets, each given to the one row it belongs to."""

    def __init__(self, results: dict[str, Any]) -> None:
        recorded = results.get("targets")
        if recorded is None:  # results from before the targets were recorded
            from bench.report import targets

            recorded = targets(results)
        self.items: list[dict[str, Any]] = list(recorded)
        self.used: set[int] = set()

    def take(self, prefix: str) -> list[tuple[str, bool | None]]:
        """The targets named `<prefix>: <target>`, as (target, met), no longer left for other rows."""
        found = []
        for index, item in enumerate(self.items):
            name = item["target"]
            if index not in self.used and name.startswith(prefix + ": "):
                self.used.add(index)
                target = re.sub(r" \([^()]*\)$", "", name[len(prefix) + 2 :])
                found.append((_pretty(target), item["met"]))
        return found

    def take_named(self, prefix: str, naming: str) -> list[dict[str, Any]]:
        """The targets whose whole name starts with `prefix` and names `naming`."""
        found = []
        for index, item in enumerate(self.items):
            name = item["target"]
            if index not in self.used and name.startswith(prefix) and naming in name:
                self.used.add(index)
                found.append(item)
        return found

    def left(self) -> Iterable[dict[str, Any]]:
        return (item for index, item in enumerate(self.items) if index not in self.used)


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def _row(scenario: str, measured: str, checks: list[tuple[str, bool | None]]) -> list[str]:
    target = "; ".join(name for name, _met in checks) or "-"
    verdict = "; ".join(_verdict(met) for _name, met in checks) or "-"
    return [scenario, measured, target, verdict]


def _latency_rows(results: dict[str, Any], targets: _Targets) -> list[list[str]]:
    configs = results.get("configs", [])
    # As `bench.report.add_ratios` pairs them: the references at the same pace and tab count.
    refs = {(r["system"], r["rate"], r["tabs"]): r for r in configs if r["system"] != "product"}
    rows = []
    product = [r for r in configs if r["system"] == "product" and r["rate"] == 60 and r["tabs"] == 3]
    for row in sorted(product, key=_layer_order):
        parts = [f"p50 {_num(row['p50_ms'])} ms, p99 {_num(row['p99_ms'])} ms"]
        for name in ("lesson", "floor"):
            ref = refs.get((name, row["rate"], row["tabs"]))
            ratio = row.get(f"p99_vs_{name}")
            if ref and ratio:
                times = f"product {1 / ratio:,.0f}× lower" if name == "lesson" else f"product {ratio:,.2f}×"
                parts.append(f"{name} p99 {_num(ref['p99_ms'])} ms ({times})")
        checks = targets.take(f"60 tok/s, 3 tabs, {row['layer']}")
        rows.append(_row(f"60 tok/s × 3 tabs, {row['layer']}, {_server(row)}", "; ".join(parts), checks))
    return rows


def _fan_out_rows(results: dict[str, Any], targets: _Targets) -> list[list[str]]:
    rows = []
    for rate in (1000, 0):
        product = [r for r in results.get("configs", []) if r["system"] == "product" and r["rate"] == rate]
        for row in sorted((r for r in product if r["tabs"] == 10), key=_layer_order):
            failures = row["refused"] + row["unfinished"]
            measured = (
                f"p99 {_num(row['p99_ms'])} ms; {_num(row['group_sends_per_token'])} group sends per token; "
                f"lost {row['lost_live']}, doubled {row['doubled'] + row['duplicates']}, failed {failures}, "
                f"texts {'exact' if row['exact'] else 'NOT exact'}"
            )
            label = f"{'max' if rate == 0 else rate} tok/s, 10 tabs, {row['layer']}"
            checks = targets.take(label)
            rows.append(_row(f"{_rate(rate)} × 10 tabs, {row['layer']}, {_server(row)}", measured, checks))
    return rows


def _saturation_rows(results: dict[str, Any], targets: _Targets) -> list[list[str]]:
    rows = []
    for sat in sorted(results.get("saturation", []), key=_layer_order):
        offered = sat.get("max_passing_offered")
        measured = f"{_num(sat['max_passing_tokens_per_s'], 0)} tok/s relayed"
        if offered:
            measured += f" (step {_num(offered, 0)})"
        if sat.get("p99_ms_at_max") is not None:
            measured += f", p99 {_num(sat['p99_ms_at_max'], 1)} ms, {_num(sat.get('cpu_s_per_1k_at_max'))} CPU s/1k"
        failed = next((s for s in sat["steps"] if not s["passed"] and s["offered_tokens_per_s"] > (offered or 0)), None)
        if failed:
            measured += f"; {_num(failed['offered_tokens_per_s'], 0)} failed: {', '.join(failed['failures'])}"
        per_run = sat["per_run_tokens_per_s"]
        label = f"saturation ({sat['layer']}, {_server(sat)}, {per_run:g} tok/s per run, 3 tabs)"
        scenario = f"saturation, {sat['layer']}, {_server(sat)} ({per_run:g} tok/s per run, 3 tabs)"
        rows.append(_row(scenario, measured, targets.take(label)))
    return rows


def _overload_rows(results: dict[str, Any], targets: _Targets) -> list[list[str]]:
    rows = []
    for sc in results.get("scale", []):
        measured = (
            f"p99 {_num(sc['p99_ms'], 0)} ms; lost {sc['lost']}, doubled {sc['doubled']}, "
            f"reordered {sc['reordered']}, texts {'exact' if sc['exact'] else 'NOT exact'}"
        )
        label = f"{sc['conversations']} runs / {sc['tabs']} tabs ({sc['layer']})"
        scenario = (
            f"overload: {sc['conversations']} runs × {sc['per_run_tokens_per_s']:g} tok/s, "
            f"{sc['tabs']} tabs, {sc['layer']}, {_server(sc)}"
        )
        rows.append(_row(scenario, measured, targets.take(label)))
    return rows


def _memory_rows(results: dict[str, Any], targets: _Targets) -> list[list[str]]:
    rows = []
    for mem in sorted(results.get("memory", []), key=_layer_order):
        measured = f"{_num(mem['kib_per_tab'], 1)} KiB per tab ({mem['connections']} tabs)"
        checks = targets.take(f"idle tab memory ({mem['layer']})")
        rows.append(_row(f"idle tabs, {mem['layer']}, {_server(mem)}", measured, checks))
    return rows


def _ttft_rows(results: dict[str, Any], targets: _Targets) -> list[list[str]]:
    rows = []
    for name, ttft in ((results.get("ttft") or {}).get("configs") or {}).items():
        label = TTFT_LABELS.get(name, name)
        over_langchain = ""
        if ttft.get("share_over_langchain_p50_ms") is not None:  # the target's figure (runs since 2 December)
            over_langchain = (
                f"share over the bare LangChain call p50 {_num(ttft['share_over_langchain_p50_ms'])} ms "
                f"(p90 {_num(ttft.get('share_over_langchain_p90_ms'))}), the LangChain call alone "
                f"{_num(ttft.get('langchain_first_token_p50_ms'))} ms; "
            )
        measured = (
            f"{over_langchain}product's share p50 {_num(ttft['product_share_p50_ms'])} ms "
            f"(p90 {_num(ttft.get('product_share_p90_ms'))}); "
            f"send → first frame p50 {_num(ttft.get('send_to_first_frame_p50_ms'))} ms; "
            f"`openai` client alone {_num(ttft.get('direct_first_token_p50_ms'))} ms, "
            f"`httpx` {_num(ttft.get('direct_httpx_first_token_p50_ms'))} ms; "
            f"cold extra {_num(ttft.get('cold_extra_ms'))} ms"
        )
        checks = []
        for item in targets.take_named("first token: ", label):
            what = "share p50" if "share" in item["target"] else "cold extra"
            limit = re.search(r"\(target ([\d.]+)( \w+)?\)$", item["target"])
            checks.append((f"{what} ≤ {float(limit[1]):g}{limit[2] or ''}" if limit else what, item["met"]))
        rows.append(_row(f"first token, {label}, {ttft.get('server', '-')}", measured, checks))
    return rows


def _cluster_rows(results: dict[str, Any], targets: _Targets) -> list[list[str]]:
    cluster = results.get("cluster") or {}
    if not cluster.get("two"):
        return []
    one, two = cluster["one"], cluster["two"]
    measured = (
        f"highest passing: one process {_num(cluster['max_one'], 0)} tok/s, two {_num(cluster['max_two'], 0)}; "
        f"at {cluster['offered_tokens_per_s']:,g} tok/s p99 {_num(one['p99_ms'], 1)} ms on one, "
        f"{_num(two['p99_ms'], 1)} ms on two, lost {two['lost_live']}"
    )
    checks = targets.take(f"two processes (PostgreSQL + Redis pubsub), {cluster['offered_tokens_per_s']:g} tok/s")
    return [_row("two processes, PostgreSQL + Redis pubsub, uvicorn", measured, checks)]


def _intro(results: dict[str, Any]) -> str:
    machine = results.get("machine") or {}
    run = "`make bench-quick`" if results.get("quick") else "`make bench`"
    text = f"From `bench/results.json`: {run}, {_num(results.get('duration_s'), 0)} s"
    if machine:
        text += f", {machine.get('nproc')} vCPUs ({machine.get('cpu_model')}), Python {machine.get('python')}"
    text += "."
    if results.get("skipped"):
        text += " Skipped: " + "; ".join(results["skipped"]) + "."
    return text


def markdown(results: dict[str, Any]) -> str:
    """The results table (with a line naming the run above it), in Markdown."""
    targets = _Targets(results)
    rows = [
        *_latency_rows(results, targets),
        *_fan_out_rows(results, targets),
        *_saturation_rows(results, targets),
        *_overload_rows(results, targets),
        *_memory_rows(results, targets),
        *_ttft_rows(results, targets),
        *_cluster_rows(results, targets),
    ]
    for item in targets.left():
        rows.append(_row("other", _num(item["measured"]), [(_pretty(item["target"]), item["met"])]))
    verdicts = [item["met"] for item in targets.items]
    tally = f"Targets in this run: {verdicts.count(True)} met, {verdicts.count(False)} missed"
    if verdicts.count(None):
        tally += f", {verdicts.count(None)} not measured"
    lines = [
        _intro(results),
        "",
        "| scenario | measured | target | verdict |",
        "|---|---|---|---|",
        *("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows),
        "",
        f"{tally} (of {len(verdicts)}).",
    ]
    return "\n".join(lines)


def replace_block(document: str, table: str) -> str:
    """The document with the text between the results markers replaced by `table`."""
    start, end = document.index(START) + len(START), document.index(END)
    return document[:start] + "\n" + table + "\n" + document[end:]


def block(document: str) -> str:
    """The text between the results markers, without the blank lines around it."""
    return document[document.index(START) + len(START) : document.index(END)].strip("\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", type=Path, default=RESULTS_PATH)
    parser.add_argument("--write", type=Path, metavar="DOC", help="replace the results block of this Markdown file")
    args = parser.parse_args(argv)
    table = markdown(json.loads(args.results.read_text()))
    if args.write:
        args.write.write_text(replace_block(args.write.read_text(), table))
    else:
        print(table)


if __name__ == "__main__":
    main()
