"""The `rlx` command. Thin: parse arguments, call the Python API, render the result.

The error boundary lives here: every `RlxError` becomes `error:` / `-->` / `hint:` on stderr and its documented exit
code; tracebacks only with `--verbose` (or RLX_VERBOSE=1). Heavy libraries (torch, ray, verl, mlflow) are imported
inside the commands that need them, never at start-up.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer

from rlx import __version__
from rlx.commands import catalog, train

if TYPE_CHECKING:
    import click

EPILOG = """\
\b
Exit codes: 0 ok, 1 invalid config or input, 2 usage, 3 Ray/MLflow unreachable or no resources, 4 job failed,
130 interrupted.

\b
Examples:
  $ rlx algos                                   # every algorithm, its paper and status
  $ rlx algos show gspo                         # the verl keys GSPO sets, and why
  $ rlx train --algo gspo --dry-run             # the resolved verl config and the launch command
  $ rlx train --algo gspo --smoke               # a real CPU smoke run, tracked in MLflow
  $ rlx validate config --algo grpo actor_rollout_ref.rollout.n=1
"""

app = typer.Typer(
    name="rlx",
    help="rlx: RL post-training experiments on verl. Presets, validation, launch, tracking, comparison.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from rlx import VERL_VERSION

        typer.echo(f"rlx {__version__} (verl {VERL_VERSION})")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors.", envvar="RLX_VERBOSE"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    if verbose:
        os.environ["RLX_VERBOSE"] = "1"


catalog.register(app)
train.register(app)


def _register_optional() -> None:
    """Commands that later pipeline stages add; each module keeps its heavy imports inside its functions."""
    import importlib

    for name in ("validate", "runs", "compare", "imports"):
        try:
            module = importlib.import_module(f"rlx.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"rlx.commands.{name}":
                raise
            continue
        module.register(app)


_register_optional()


def _terminate_as_interrupt() -> None:
    """SIGTERM (and SIGHUP) take the same path as Ctrl-C, so `timeout`, a closed terminal or a CI cancel stop the job
    rlx started on its embedded head, mark the run, and stop the head, instead of orphaning them."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) in (signal.SIG_DFL, None):
            signal.signal(sig, interrupt)


def _verbose(argv: list[str]) -> bool:
    return "--verbose" in argv or "-v" in argv or os.environ.get("RLX_VERBOSE", "") not in ("", "0")


def _click_classes() -> tuple[
    tuple[type[Exception], ...], tuple[type[click.exceptions.Exit | typer.Exit], ...], tuple[type[Exception], ...]
]:
    """(ClickException, Exit, Abort) classes of both click and the click that typer >= 0.2x vendors as `typer._click`.

    Typer raises its vendored classes, which are not click's: catching only click's turned `rlx nosuch` or an unknown
    option into an "internal error" (exit 70) instead of a usage error (exit 2).
    """
    import click
    import typer

    errors: list[type[Exception]] = [click.exceptions.ClickException]
    exits: list[type[click.exceptions.Exit | typer.Exit]] = [click.exceptions.Exit, typer.Exit]
    aborts: list[type[Exception]] = [click.exceptions.Abort, typer.Abort]
    try:
        from typer._click import exceptions as vendored
    except ImportError:
        pass
    else:
        errors.append(vendored.ClickException)
    return tuple(errors), tuple(exits), tuple(aborts)


def _usage_text(e) -> str:
    """A click usage error in rlx's format: `error:` first, then how to get help."""
    lines = [f"error: {e.format_message()}"]
    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        lines.append(f"hint: `{ctx.command_path} --help` lists the arguments and options")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the CLI inside rlx's error boundary."""
    from rlx.errors import EXIT_INTERRUPTED, EXIT_USAGE, RlxError

    click_errors, click_exits, click_aborts = _click_classes()
    interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt, *click_aborts)
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # the console script, not an in-process caller such as a test
        _terminate_as_interrupt()
    try:
        rv = app(args=args, prog_name="rlx", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except RlxError as e:
        if _verbose(args):
            import traceback

            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.write(e.render() + "\n")
        code = e.exit_code
    except click_errors as e:
        sys.stderr.write(_usage_text(e))
        code = getattr(e, "exit_code", EXIT_USAGE)
    except click_exits as e:
        code = e.exit_code
    except interrupts:
        sys.stderr.write("interrupted\n")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = 0
    except Exception as e:  # a bug: say so plainly, with the traceback only when asked
        if _verbose(args):
            raise
        sys.stderr.write(f"error: internal error: {type(e).__name__}: {e}\nhint: re-run with --verbose and report it\n")
        code = 70
    if argv is None:
        # The command is over. A Ctrl-C from now on would only interrupt libraries' atexit hooks (Ray's prints an
        # "Exception ignored in atexit callback" traceback), so it is ignored while the interpreter exits.
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
