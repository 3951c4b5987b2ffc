"""Mean over class splits of ``bench/pool_inference.py``'s tables: one row per method, one column per scenario.

    python bench/pool_inference.py --domain mnist > mnist.log; python bench/pool_summary.py mnist.log

Method names that carry a split's own trust cosine (``moving to cosine 0.84 ...``) are grouped by their place
in :data:`embedder.fewshot.pool.GRID` (q 0.5, 0.25, 0.1), since each split measures its own cosine.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict

TRUST = re.compile(r"moving to cosine [0-9.]+ of its supports at most")


def parse(text: str) -> dict[str, dict[str, list[float]]]:
    """``{scenario: {method: [accuracy of each split]}}``."""
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    scenario, trust_rank = None, 0
    for line in text.splitlines():
        if line.startswith("### "):
            scenario, trust_rank = line[4:].split(":")[0], 0
        elif scenario and line.startswith("| ") and not line.startswith(("| method", "|---")):
            method, value = (cell.strip() for cell in line.strip("|").rsplit("|", 1))
            if TRUST.search(method) and "free clusters" not in method:
                method = f"trust q={(0.5, 0.25, 0.1)[trust_rank]}"
                trust_rank += 1
            elif TRUST.search(method):
                method = "radius 0.5, 64 free clusters, trust q=0.1"
            table[scenario][method.split(",")[0] if method.startswith("summary") else method].append(float(value))
    return table


def main() -> None:
    for path in sys.argv[1:]:
        table = parse(open(path).read())
        scenarios = list(table)
        methods = list(dict.fromkeys(m for s in scenarios for m in table[s]))
        splits = max(len(v) for s in scenarios for v in table[s].values())
        print(f"\n{path}: mean of {splits} split(s)\n\n| method | " + " | ".join(scenarios) + " |")
        print("|---" * (1 + len(scenarios)) + "|")
        for m in methods:
            cells = [f"{sum(v) / len(v):.1f}" if (v := table[s].get(m)) else "-" for s in scenarios]
            print(f"| {m} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
