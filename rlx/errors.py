"""Errors with a documented exit code, a location and a `hint:`.

Every failure a user can cause or meet is an `RlxError`. The CLI boundary (`rlx.cli.main`) prints it as

    error: <what failed>
      --> <config path or file:line:column>
    hint: <the exact next step>

and exits with its code. Tracebacks are printed only with `--verbose`.
"""

from __future__ import annotations

# Exit codes (design.md, "Exit codes"). Documented in README and `rlx --help`.
EXIT_OK = 0
EXIT_INVALID = 1  # invalid config or input
EXIT_USAGE = 2  # bad command line
EXIT_UNREACHABLE = 3  # Ray or MLflow unreachable, or no resources
EXIT_JOB_FAILED = 4  # the job ran and failed
EXIT_INTERRUPTED = 130


class RlxError(Exception):
    """Base error: a message, where it happened, what to do next, and an exit code.

    `code` is the rule code (`RLX001`, ...) of the validator rule that describes this failure, when one does:
    `rlx validate` reports the error as that rule, and `rlx explain CODE` explains it. The codes are declared with
    their rules in `rlx.validate.checks`; a test holds every code a raise site names to a declared rule. `path` is
    the dotted config key the error is about, when it is about one (`where` says where it was written).
    """

    exit_code = EXIT_INVALID

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        hint: str | None = None,
        exit_code: int | None = None,
        code: str | None = None,
        path: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        self.code = code
        self.path = path
        if exit_code is not None:
            self.exit_code = exit_code

    def render(self) -> str:
        lines = [f"error: {self.message}"]
        if self.where:
            lines.append(f"  --> {self.where}")
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "error": self.message,
            "where": self.where,
            "hint": self.hint,
            "exit_code": self.exit_code,
            "code": self.code,
        }


class ConfigError(RlxError):
    """The config, a preset, an experiment file or an override is invalid (exit 1)."""

    exit_code = EXIT_INVALID


class UsageError(RlxError):
    """The command line is wrong (exit 2)."""

    exit_code = EXIT_USAGE


class UnreachableError(RlxError):
    """Ray or MLflow cannot be reached, or the cluster lacks the resources asked for (exit 3)."""

    exit_code = EXIT_UNREACHABLE


class JobFailedError(RlxError):
    """The job ran and failed (exit 4)."""

    exit_code = EXIT_JOB_FAILED


def did_you_mean(word: str, candidates, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Closest candidates to `word`, best first (difflib ratio)."""
    import difflib

    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=cutoff)


def suggestion(word: str, candidates, fallback: str | None = None) -> str | None:
    """A `did you mean` phrase for a hint, or `fallback` when nothing is close."""
    close = did_you_mean(word, candidates)
    if close:
        return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    return fallback
