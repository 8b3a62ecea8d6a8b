#!/usr/bin/env python
"""Pool several ``cdc.py`` runs into per-round paired ratios to the unaudited run.

On a shared machine a run of five rounds leaves each ratio's median at the mercy of one or two
rounds; every round runs every design back to back, so the ratio design / unaudited *within
one round* shares that round's load.  This takes the median of those per-round ratios over all
rounds of all given runs (same scale, clients and duration required)::

    .venv/bin/python bench/pool_cdc.py run1/cdc.json run2/cdc.json --out bench/results/DATE

Writes ``cdc-pooled.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

SIZES = ("--scale", "--clients", "--seconds")


def _sizes(run: dict[str, object]) -> tuple[str, ...]:
    words = str(run["run"]["command"]).split()  # type: ignore[index]
    return tuple(words[words.index(s) + 1] if s in words else "default" for s in SIZES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    runs = [json.loads(path.read_text()) for path in args.runs]
    if len({_sizes(run) for run in runs}) != 1:
        raise SystemExit("runs of different scale, clients or duration cannot be pooled")
    ratios: dict[str, list[float]] = {}
    for run in runs:
        tps = run["writer"]["runs"]
        for key, values in tps.items():
            baseline = tps[f"unaudited sync={key.rsplit('=', 1)[1]}"]
            ratios.setdefault(key, []).extend(v / b for v, b in zip(values, baseline, strict=True))
    lines = [
        "# CDC writer cost: paired ratios pooled over runs",
        "",
        "Runs: "
        + ", ".join(
            f"{run['run']['date']} (load after {run['run']['load_after']})" for run in runs
        ),
        f"Command of each: `{runs[0]['run']['command']}`",
        "",
        "| design | rounds | median paired ratio to unaudited | quartiles | min-max |",
        "|---|---:|---:|---|---|",
    ]
    for key, values in ratios.items():
        low, _, high = statistics.quantiles(values, n=4)
        lines.append(
            f"| {key} | {len(values)} | {statistics.median(values):.3f} "
            f"| {low:.3f}-{high:.3f} | {min(values):.3f}-{max(values):.3f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cdc-pooled.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
