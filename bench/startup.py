"""Cold start-up of the CLI: `rlx --help` and `rlx train --algo gspo --dry-run`, against `python -c pass`.

Each command runs as a fresh process (cold interpreter, warm OS file cache), N times; the median is reported, and the
ratio to the bare-interpreter baseline measured in the same run. Targets on the 2-core reference machine: `--help`
under 0.3 s, dry-run under 1.5 s.

    .venv/bin/python bench/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def time_cmd(argv: list[str], runs: int) -> list[float]:
    subprocess.run(argv, capture_output=True, check=True)  # warm the OS file cache (and rlx's defaults cache)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    cases = {
        "python -c pass (baseline)": [sys.executable, "-c", "pass"],
        "rlx --help": [str(BIN / "rlx"), "--help"],
        "rlx algos": [str(BIN / "rlx"), "algos"],
        "rlx train --algo gspo --dry-run": [str(BIN / "rlx"), "train", "--algo", "gspo", "--dry-run"],
        "rlx train --algo gspo --dry-run --format json": [
            str(BIN / "rlx"),
            "train",
            "--algo",
            "gspo",
            "--dry-run",
            "--format",
            "json",
        ],
    }
    targets = {"rlx --help": 0.3, "rlx train --algo gspo --dry-run": 1.5}
    results = {name: statistics.median(time_cmd(argv, args.runs)) for name, argv in cases.items()}
    base = results["python -c pass (baseline)"]
    print(f"median of {args.runs} cold runs each")
    print(f"{'command':<48} {'median s':>9} {'x baseline':>11} {'target s':>9}")
    for name, t in results.items():
        target = targets.get(name)
        mark = "" if target is None else ("  ok" if t <= target else "  OVER")
        print(f"{name:<48} {t:9.3f} {t / base:11.1f} {target if target else '':>9}{mark}")


if __name__ == "__main__":
    main()
