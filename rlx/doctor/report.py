"""Rendering doctor results: text, JSON, GitHub Actions workflow commands, and an HTML section."""

from __future__ import annotations

import html
from collections.abc import Sequence

from rlx.doctor import Diagnosis
from rlx.doctor.registry import Status

_MARK = {Status.ok: "ok", Status.warn: "WARN", Status.fail: "FAIL", Status.skip: "skip"}


def summary_line(d: Diagnosis) -> str:
    fails, warns = d.count(Status.fail), d.count(Status.warn)
    head = "unhealthy" if fails else "healthy"
    parts = [f"{fails} failure{'s' * (fails != 1)}"] if fails else []
    if warns:
        parts.append(f"{warns} warning{'s' * (warns != 1)}")
    checked = sum(v.status is not Status.skip for v in d.verdicts)
    return f"{head}: " + (", ".join(parts) + " in " if parts else "") + f"{checked} checks"


def render_text(diagnoses: Sequence[Diagnosis], *, verbose: bool = False) -> str:
    """One block per run: each check's verdict; warn/fail add evidence, why and hint."""
    out: list[str] = []
    for d in diagnoses:
        algo = (
            f"{d.algo} (from {'rlx tag' if d.algo_source == 'tag' else 'verl params'})"
            if d.algo
            else "unknown (generic checks only)"
        )
        out.append(f"run {d.name or '-'} ({d.run_id[:12]})  algorithm {algo}  {d.steps} steps, {d.metrics} metrics")
        skipped = [v for v in d.verdicts if v.status is Status.skip]
        for v in d.verdicts:
            if v.status is Status.skip:
                continue
            at = f" @ step {v.step}" if v.step is not None else ""
            out.append(f"  {_MARK[v.status]:<4}  {v.code}  {v.title}{at}: {v.message}")
            if v.status in (Status.warn, Status.fail) or verbose:
                for e in v.evidence:
                    out.append(f"          evidence: {e.text()}")
                if v.status in (Status.warn, Status.fail):
                    out.append(f"          why: {v.explanation}")
                    out.append(f"          hint: {v.hint}")
        if skipped:
            out.append("  skip  " + ", ".join(v.code for v in skipped) + " (metrics not logged)")
        out.append(f"  => {summary_line(d)}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def render_github(diagnoses: Sequence[Diagnosis]) -> str:
    """GitHub Actions workflow commands: `::error` for fail, `::warning` for warn, one per verdict."""
    lines = []
    for d in diagnoses:
        for v in d.verdicts:
            if v.status not in (Status.warn, Status.fail):
                continue
            kind = "error" if v.status is Status.fail else "warning"
            title = _gh_escape(f"{v.code} {v.title} ({d.name or d.run_id[:12]})", True)
            body = f"{v.message}" + "".join(f"\nevidence: {e.text()}" for e in v.evidence) + f"\nhint: {v.hint}"
            lines.append(f"::{kind} title={title}::{_gh_escape(body)}")
    return "\n".join(lines)


def render_html(d: Diagnosis) -> str:
    """An HTML section for one run (embedded per run by `rlx compare runs --html`)."""
    esc = html.escape
    rows = []
    for v in d.verdicts:
        if v.status is Status.skip:
            continue
        ev = "<br>".join(esc(e.text()) for e in v.evidence)
        hint = f"<br><b>hint:</b> {esc(v.hint)}" if v.status in (Status.warn, Status.fail) else ""
        rows.append(
            f"<tr class='doctor-{v.status.value}'><td>{esc(v.status.value)}</td><td>{esc(v.code)}</td>"
            f"<td>{esc(v.title)}</td><td>{'' if v.step is None else v.step}</td>"
            f"<td>{esc(v.message)}{hint}</td><td>{ev}</td></tr>"
        )
    return (
        f"<section class='doctor'><h3>doctor: {esc(d.name or d.run_id)} &mdash; {esc(summary_line(d))}</h3>"
        "<table><tr><th>verdict</th><th>code</th><th>check</th><th>step</th><th>finding</th>"
        "<th>evidence</th></tr>" + "".join(rows) + "</table></section>"
    )
