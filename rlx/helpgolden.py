"""Golden files of every command's exact `--help`, so a change to any help text is a reviewed diff.

python -m rlx.helpgolden            # rewrite tests/data/help/*.txt (also done by `python -m rlx.docgen`)
python -m rlx.helpgolden --check    # exit 1 when a file is stale, missing or left over

Each text is what `COLUMNS=80 rlx ... --help` prints: the real entry point (`rlx.cli.main`), in this process, with the
terminal width fixed so that the wrapping does not depend on who regenerates the files.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

COLUMNS = 80
GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "help"


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


def generated() -> dict[Path, str]:
    """Every golden file: path -> expected text."""
    return {golden_path(p): render(p) for p in command_paths()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write (or --check) the golden --help files under tests/data/help/.")
    ap.add_argument("--check", action="store_true", help="fail if a file is stale, missing or left over")
    args = ap.parse_args(argv)
    files = generated()
    leftover = sorted(set(GOLDEN.glob("*.txt")) - set(files)) if GOLDEN.exists() else []
    if args.check:
        stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
        for p in stale + leftover:
            print(f"{p} is stale: run `python -m rlx.helpgolden`", file=sys.stderr)
        return 1 if stale or leftover else 0
    from rlx.fsutil import atomic_write_text

    GOLDEN.mkdir(parents=True, exist_ok=True)
    for p in leftover:
        p.unlink()
    for p, text in files.items():
        atomic_write_text(p, text)
    print(f"wrote {len(files)} help files to {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
