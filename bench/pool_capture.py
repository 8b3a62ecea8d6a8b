#!/usr/bin/env python
"""Pool several ``capture.py`` runs into per-round paired ratios to the floor.

On a shared machine the load drifts during a run, so the median of each design's times can
compare rounds run under different load.  Every round runs every design back to back, so the
ratio design / floor *within one round* shares that round's load; this script takes the median
of those per-round ratios over all rounds of all given runs (same sizes required)::

    .venv/bin/python bench/pool_capture.py bench/results/capture.json \
        bench/results/all-designs/capture.json

Writes ``bench/results/capture-pooled.md``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = ("rows", "single", "clients", "transactions_per_client")


def main(paths: list[str]) -> int:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    sizes = {tuple(r["parameters"][k] for k in SIZES) for r in runs}
    if len(sizes) != 1:
        raise SystemExit(f"runs of different sizes cannot be pooled: {sorted(sizes)}")
    names = [d["name"] for d in runs[0]["designs"]]
    common = [n for n in names if all(n in {d["name"] for d in r["designs"]} for r in runs)]
    workloads = runs[0]["workloads"]
    ratios: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        by_name = {d["name"]: d["workloads"] for d in run["designs"]}
        for workload in workloads:
            floor = by_name["floor"][workload]["seconds"]
            for name in common:
                own = by_name[name][workload]["seconds"]
                ratios.setdefault((name, workload), []).extend(
                    a / b for a, b in zip(own, floor, strict=True)
                )
    rounds = len(ratios["floor", workloads[0]])
    lines = [
        "# Capture benchmark, pooled per-round ratios to the floor",
        "",
        f"- runs: {', '.join(r['environment']['date'] for r in runs)} "
        f"({' + '.join(str(r['parameters']['rounds']) for r in runs)} = {rounds} rounds)",
        f"- sizes: {dict(zip(SIZES, sizes.pop(), strict=True))}",
        "- each cell: median over all rounds of (design time / floor time in the same round), "
        "with the interquartile range",
        "",
        "| workload | " + " | ".join(common) + " |",
        "|---|" + "---:|" * len(common),
    ]
    for workload in workloads:
        cells = []
        for name in common:
            values = ratios[name, workload]
            q1, _, q3 = statistics.quantiles(values, n=4)
            cells.append(f"{statistics.median(values):.2f} ({q1:.2f}-{q3:.2f})")
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    (RESULTS / "capture-pooled.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
