"""Validation results: `Problem`s collected into a `Report`, and the renderers (rich text, JSON, GitHub annotations).

Nothing here imports verl, torch or Hydra; rendering a report is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlx.algorithms.registry import Severity

_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass(frozen=True)
class Problem:
    """One finding: a rule code, its severity, verl's dotted config path, what is wrong, the fix, and who set it.

    `source` names the layer that set the value ("preset gspo", "command line", "verl default") or, for input
    problems, the file:line:column where reading failed.
    """

    code: str
    severity: Severity
    path: str
    message: str
    hint: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
            "source": self.source,
        }


@dataclass
class Report:
    """Every problem a validation found, in the order the checks ran. `ok` means: no error (warnings allowed)."""

    problems: list[Problem] = field(default_factory=list)
    strict: bool = False  # warnings count as failures (`--strict`)
    subject: str = ""  # what was validated, for the text header ("preset gspo", "verl overrides", "file x.yaml")
    facts: dict[str, Any] = field(default_factory=dict)  # what the config asks for (GPUs, ...), shown in text only

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def infos(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.INFO]

    @property
    def ok(self) -> bool:
        return not self.errors and not (self.strict and self.warnings)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def codes(self) -> list[str]:
        return [p.code for p in self.problems]

    def find(self, code: str) -> list[Problem]:
        return [p for p in self.problems if p.code == code]

    def sorted(self) -> list[Problem]:
        return sorted(self.problems, key=lambda p: _ORDER[p.severity])

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.sorted()],
        }


_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
_HEADING = {Severity.ERROR: "Errors", Severity.WARNING: "Warnings", Severity.INFO: "Notes"}


def render_text(report: Report, console) -> None:
    """A rich report grouped by severity: each problem as `code path`, the message, who set it and the fix."""
    from rich.markup import escape

    subject = f" for {report.subject}" if report.subject else ""
    if report.facts.get("gpus"):
        f = report.facts
        console.print(
            f"[dim]asks for {f['gpus']} GPU(s): {f['nnodes']} node(s) x {f['gpus_per_node']}; "
            f"rollout replicas of {f['replica']} GPU(s)[/dim]"
        )
    if not report.problems:
        console.print(f"[green]validation passed{escape(subject)}: no problems[/green]")
        return
    for sev in (Severity.ERROR, Severity.WARNING, Severity.INFO):
        group = [p for p in report.problems if p.severity is sev]
        if not group:
            continue
        console.print(f"\n[{_STYLE[sev]}]{_HEADING[sev]} ({len(group)})[/{_STYLE[sev]}]")
        for p in group:
            console.print(f"  [{_STYLE[sev]}]{p.code}[/{_STYLE[sev]}] [bold]{escape(p.path or '-')}[/bold]")
            console.print(f"    {escape(p.message)}")
            if p.source:
                console.print(f"    [dim]--> {escape(_describe_source(p.source))}[/dim]")
            if p.hint:
                console.print(f"    [green]hint:[/green] {escape(p.hint)}")
    verdict = "passed" if report.ok else "failed"
    style = "green" if report.ok else "bold red"
    strict = " (--strict: warnings fail)" if report.strict and report.warnings else ""
    console.print(
        f"\n[{style}]validation {verdict}{escape(subject)}[/{style}]: "
        f"{len(report.errors)} error(s), {len(report.warnings)} warning(s){strict}. "
        "`rlx rules explain CODE` explains a rule; `--ignore CODE` suppresses it."
    )


def _describe_source(source: str) -> str:
    """ "set by preset gspo (presets/gspo.yaml:7)" for a provenance label; a location (file:line, an override's
    text) as it is."""
    import re

    if (
        source.startswith("command line:")
        or re.match(r"^\S+\.(?:ya?ml|sh|bash)(:\d+)*(: .*)?$", source)
        or source == "verl"
    ):
        return source
    return f"set by {source}"


def _gh_escape(text: str, prop: bool = False) -> str:
    # GitHub workflow-command escaping: https://github.com/actions/toolkit/blob/main/packages/core/src/command.ts
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def _file_line(source: str) -> tuple[str | None, str | None]:
    """`path/x.yaml:12[:3]` (or a script's `run.sh:12`) in a source string, as (file, line); (None, None) for a layer label."""
    import re

    m = re.search(r"([^\s():]+\.(?:ya?ml|sh|bash)):(\d+)", source)
    return (m.group(1), m.group(2)) if m else (None, None)


def render_github(report: Report) -> str:
    """GitHub Actions workflow commands (`::error file=..,line=..,title=..::message`), one line per problem."""
    kind = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
    lines = []
    for p in report.sorted():
        props = []
        file, line = _file_line(p.source)
        if file:
            props.append(f"file={_gh_escape(file, True)}")
            props.append(f"line={line}")
        props.append(f"title={_gh_escape(f'{p.code} {p.path}'.strip(), True)}")
        body = p.message + (f" ({p.source})" if p.source and not file else "") + (f"\nhint: {p.hint}" if p.hint else "")
        lines.append(f"::{kind[p.severity]} {','.join(props)}::{_gh_escape(body)}")
    return "\n".join(lines)
