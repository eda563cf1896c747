"""Golden files of every command's exact `--help`, and of each command's output on fixed inputs, so that a change to
anything the CLI prints is a reviewed diff.

python -m rlx.helpgolden            # rewrite tests/data/help/*.txt and tests/data/output/*.txt (also `rlx.docgen`)
python -m rlx.helpgolden --check    # exit 1 when a file is stale, missing or left over

Each help text is what `COLUMNS=80 rlx ... --help` prints: the real entry point (`rlx.cli.main`), in this process, with
the terminal width fixed so that the wrapping does not depend on who regenerates the files. Each output file is one
of `OUTPUTS`: the command line, its stdout, its stderr and its exit code, with the checkout's path written `<repo>`.
The inputs are rlx's own presets and rules and the verl scripts under tests/data/scripts, so the outputs depend on
nothing but the code.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

COLUMNS = 80
REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "help"
OUTPUT_GOLDEN = REPO / "tests" / "data" / "output"

# name -> arguments: one golden output per case. Each command that reads only local, fixed inputs has its text output
# here, good and bad input alike (a run, an MLflow store or a Ray cluster are not fixed inputs: their commands'
# outputs are asserted by the integration tests).
OUTPUTS: dict[str, tuple[str, ...]] = {
    "algos": ("algos",),
    "algos-show-gspo": ("algos", "show", "gspo"),
    "algos-show-unknown": ("algos", "show", "gsop"),
    "presets-ls": ("presets", "ls"),
    "presets-show-dapo": ("presets", "show", "dapo"),
    "rules-explain-RLX401": ("rules", "explain", "RLX401"),
    "validate-config-grpo": ("validate", "config", "--algo", "grpo"),
    "validate-config-readme": (  # the README's validate example (tests/cli/test_readme_examples.py)
        "validate",
        "config",
        "--algo",
        "grpo",
        "actor_rollout_ref.rollout.n=1",
        "actor_rollout_ref.actor.clip_ratoi=0.1",
    ),
    "validate-config-gspo-bad": (
        "validate",
        "config",
        "--algo",
        "gspo",
        "actor_rollout_ref.actor.clip_ratio_low=0.2",
        "data.train_batch_size=100",
        "actor_rollout_ref.actor.ppo_mini_batch_size=64",
    ),
    "validate-config-typo": ("validate", "config", "--algo", "grpo", "actor_rollout_ref.actor.policy_loss.los_mode=x"),
    "validate-config-script": ("validate", "config", "tests/data/scripts/dapo_qwen2_5_7b_math.sh"),
    "validate-config-script-github": ("validate", "config", "tests/data/scripts/gspo_qwen3_4b.sh", "-f", "github"),
    "import-without-output": ("import", "tests/data/scripts/grpo_qwen2_5_3b_gsm8k.sh"),
}


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as argument paths: (), ("algos",), ("algos", "show"), ... (hidden ones
    left out), in a stable order."""
    import typer

    from rlx.cli import app

    out: list[tuple[str, ...]] = []

    def walk(cmd, path: tuple[str, ...]) -> None:
        out.append(path)
        for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return out


def render(path: tuple[str, ...]) -> str:
    """The exact stdout of `COLUMNS=80 rlx *path --help`."""
    from rlx.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "LINES")}
    os.environ["COLUMNS"], os.environ["LINES"] = str(COLUMNS), "50"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*path, "--help"])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if code != 0:
        raise RuntimeError(f"`rlx {' '.join(path)} --help` exited {code}: {err.getvalue()}")
    return out.getvalue()


def golden_path(path: tuple[str, ...]) -> Path:
    return GOLDEN / ("-".join(("rlx", *path)) + ".txt")


def render_output(args: tuple[str, ...]) -> str:
    """`$ rlx ARGS`, then its stdout, its stderr and its exit code, as run from the checkout at 80 columns."""
    from rlx import render as consoles
    from rlx.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "LINES", "NO_COLOR")}
    os.environ.update(COLUMNS=str(COLUMNS), LINES="50", NO_COLOR="1")
    cwd = os.getcwd()
    os.chdir(REPO)
    consoles._console = consoles._err_console = None  # rich reads the width when a console is made: make them anew
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(cwd)
        consoles._console = consoles._err_console = None
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text = f"$ rlx {' '.join(args)}\n{out.getvalue()}"
    if err.getvalue():
        text += f"--- stderr ---\n{err.getvalue()}"
    text += f"--- exit {code} ---\n"
    return text.replace(str(REPO), "<repo>")


def output_path(name: str) -> Path:
    return OUTPUT_GOLDEN / f"{name}.txt"


def generated() -> dict[Path, str]:
    """Every golden file: path -> expected text."""
    files = {golden_path(p): render(p) for p in command_paths()}
    files.update({output_path(name): render_output(args) for name, args in OUTPUTS.items()})
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write (or --check) the golden files under tests/data/help/ and output/.")
    ap.add_argument("--check", action="store_true", help="fail if a file is stale, missing or left over")
    args = ap.parse_args(argv)
    files = generated()
    leftover = sorted({*GOLDEN.glob("*.txt"), *OUTPUT_GOLDEN.glob("*.txt")} - set(files))
    if args.check:
        stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        for p in stale + leftover:
            print(f"{p} is stale: run `python -m rlx.helpgolden`", file=sys.stderr)
        return 1 if stale or leftover else 0
    from rlx.fsutil import atomic_write_text

    GOLDEN.mkdir(parents=True, exist_ok=True)
    OUTPUT_GOLDEN.mkdir(parents=True, exist_ok=True)
    for p in leftover:
        p.unlink()
    for p, text in files.items():
        atomic_write_text(p, text)
    print(f"wrote {len(files)} golden files to {GOLDEN} and {OUTPUT_GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
