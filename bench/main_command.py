"""Where the README's main command spends its wall time, phase by phase, for both `--smoke` engines.

    .venv/bin/python bench/main_command.py                        # rlx engine, 3 runs of 200 steps
    .venv/bin/python bench/main_command.py --engine verl --steps 3 --repeat 1
    .venv/bin/python bench/main_command.py --engine rlx verl --repeat 5

Each run is `rlx train --algo ALGO --smoke --engine E` as a user runs it: a real subprocess with its own embedded Ray
head and a fresh sqlite store in a temporary directory. Every line it prints is timestamped as it arrives, and the
phases are cut at the lines rlx and the job print (the job's lines reach rlx through Ray's log tail, so a phase
boundary inside the job is late by up to one poll):

    resolve, validate, imports   launch -> "starting a local Ray head"
    head, MLflow run, submit     -> "submitted as"
    job start to first step      -> the first step line ("step 1/" from rlx's loop, "step:1 -" from verl's)
    training                     -> the last step line
    job end to SUCCEEDED         -> rlx's "SUCCEEDED" status line
    head stop and exit           -> the process exits

Baselines measured in the same run, first: a bare `python -c pass` and a bare embedded head start and stop
(`rlx.launch.cluster.LocalHead`, the class `rlx train` uses, stopped after it settled). Each phase is reported as the median over `--repeat`
runs, in seconds and as a multiple of the bare head start+stop. Issue 15's target: the rlx engine's main command
within 30 s end to end on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RLX = str(Path(sys.executable).parent / "rlx")
PHASES = (
    "resolve, validate, imports",
    "head, MLflow run, submit",
    "job start to first step",
    "training",
    "job end to SUCCEEDED",
    "head stop and exit",
)
STEP = {"rlx": re.compile(r"^step (\d+)/"), "verl": re.compile(r"^(?:\(\w+ pid=\d+\) )?step:(\d+) -")}


def _timed_lines(cmd: list[str], cwd: str) -> tuple[int, float, list[tuple[float, str]]]:
    """(exit code, wall s, [(s since launch, line)]) of `cmd`, stdout and stderr merged and unbuffered."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - t0, line.rstrip("\n")))
    code = proc.wait()
    return code, time.perf_counter() - t0, lines


def _first(lines: list[tuple[float, str]], pred) -> float | None:
    return next((t for t, x in lines if pred(x)), None)


def phases(engine: str, lines: list[tuple[float, str]], wall: float) -> list[float] | None:
    """Durations of PHASES, or None when a boundary line is missing (the run failed or printed differently)."""
    step = STEP[engine]
    steps = [t for t, x in lines if step.search(x)]
    cuts = [
        0.0,
        _first(lines, lambda x: "starting a local Ray head" in x),
        _first(lines, lambda x: "submitted as" in x),
        steps[0] if steps else None,
        steps[-1] if steps else None,
        _first(lines, lambda x: "SUCCEEDED" in x),
        wall,
    ]
    if any(c is None for c in cuts):
        return None
    return [b - a for a, b in zip(cuts, cuts[1:], strict=False)]  # type: ignore[operator]


def baseline_python() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def baseline_head(settle: float = 5.0) -> tuple[float, float]:
    """(start s, stop s) of a bare embedded head, started and stopped the way `rlx train` does it (no MLflow, no job).

    It idles `settle` seconds in between, untimed: `rlx train` stops its head after a job ran, and a head SIGTERMed
    right after its Jobs API first answers took 32 s to exit on this machine (2-3 s once it has settled).
    """
    from rlx.launch.cluster import LocalHead

    t0 = time.perf_counter()
    head = LocalHead().start()
    started = time.perf_counter() - t0
    time.sleep(settle)
    t0 = time.perf_counter()
    head.stop()
    return started, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", nargs="+", choices=sorted(STEP), default=["rlx"])
    ap.add_argument("--algo", default="gspo")
    ap.add_argument("--steps", type=int, default=None, help="default: the engine's own (200 for rlx)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}")
    py = statistics.median(baseline_python() for _ in range(3))
    heads = [baseline_head() for _ in range(max(1, min(args.repeat, 3)))]
    start, stop = statistics.median(h[0] for h in heads), statistics.median(h[1] for h in heads)
    head = start + stop
    print(
        f"baselines: python -c pass {py:.2f} s; embedded head start {start:.1f} s + stop {stop:.1f} s = {head:.1f} s"
        " (medians)\n"
    )

    for engine in args.engine:
        runs: list[list[float]] = []
        walls: list[float] = []
        for i in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="rlx-bench-main-") as cwd:
                cmd = [RLX, "train", "--algo", args.algo, "--smoke", "--engine", engine]
                if args.steps:
                    cmd += ["--steps", str(args.steps)]
                code, wall, lines = _timed_lines(cmd, cwd)
            cut = phases(engine, lines, wall)
            status = "ok" if code == 0 and cut else f"exit {code}" + ("" if cut else ", phase lines missing")
            print(f"{engine} run {i + 1}/{args.repeat}: {wall:.1f} s ({status})", file=sys.stderr)
            walls.append(wall)
            if code == 0 and cut:
                runs.append(cut)
        print(
            f"engine {engine}: `{' '.join(['rlx', 'train', '--algo', args.algo, '--smoke', '--engine', engine])}`"
            f" x {args.repeat}"
        )
        print(f"  wall: median {statistics.median(walls):.1f} s, range {min(walls):.1f}-{max(walls):.1f} s")
        if not runs:
            print("  no run printed every phase line: see its output by running the command above")
            continue
        print(f"  {'phase':32s} {'median s':>9s} {'x head':>7s}")
        for k, name in enumerate(PHASES):
            med = statistics.median(r[k] for r in runs)
            print(f"  {name:32s} {med:9.1f} {med / head:7.2f}")
        print()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
