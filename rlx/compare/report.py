"""Renderers for a `Comparison`: a rich table for terminals, JSON, CSV, Markdown and a self-contained HTML page.

Every renderer shows the same facts: one row per run (name, algorithm, status, steps, duration, reward sparkline,
final / best / AUC of each metric column, marks), the best value of each column highlighted according to the
metric's direction, and the config diff grouped by section.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from typing import Any

from rlx.compare.core import Comparison, RunRow
from rlx.compare.diff import SMOKE_SOURCE
from rlx.compare.metrics import STATS, Direction, MetricSpec

MISSING = "—"  # the run did not log this metric
LEGEND = (
    "each metric cell: final / best / auc (mean height of the curve); * best in its column; "
    "↑ higher is better, ↓ lower is better, →0 closest to 0 is better, · neutral (never highlighted); — missing"
)


def fmt_num(value: float | None) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.4g}"


def fmt_duration(seconds: float | None, ongoing: bool = False) -> str:
    if seconds is None:
        return MISSING
    s = int(round(seconds))
    text = f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    return text + ("+" if ongoing else "")


def algo_text(row: RunRow) -> str:
    """The algorithm, with `~` when derived from verl's params rather than recorded by rlx."""
    if not row.algorithm:
        return "?"
    return row.algorithm + ("~" if row.algorithm_source == "params" else "")


def header(m: MetricSpec) -> str:
    return f"{m.label} {m.direction.arrow}"


def _is_best(cmp: Comparison, row: RunRow, key: str, stat: str) -> bool:
    return row.run_id in cmp.best.get(key, {}).get(stat, ())


def _cell_parts(cmp: Comparison, row: RunRow, m: MetricSpec) -> list[tuple[str, bool]]:
    """[(text, is_best)] for final, best (directional metrics only) and auc."""
    s = row.summaries.get(m.key)
    if s is None:
        return [(MISSING, False)]
    stats = [st for st in STATS if not (st == "best" and m.direction is Direction.NEUTRAL)]
    return [(fmt_num(s.get(st)), _is_best(cmp, row, m.key, st)) for st in stats]


# ---- text ---------------------------------------------------------------------------------------------------------
# A plain aligned grid rather than a rich Table: rich measures every cell and takes ~6 s for 1,000 runs; this is
# linear and prints the same facts. Styles (best in bold green, marks in yellow) are applied with rich Text spans.


def _grid(headers: list[str], rows: list[list[tuple[str, str]]]) -> list[list[tuple[str, str]]]:
    """Pad cells to column width; a cell is (text, style). Returns lines of (padded text, style) segments."""
    widths = [len(h) for h in headers]
    for r in rows:
        for i, (text, _) in enumerate(r):
            widths[i] = max(widths[i], len(text))
    out = [[(h.ljust(widths[i]) + "  ", "bold") for i, h in enumerate(headers)]]
    for r in rows:
        out.append([(text.ljust(widths[i]) + "  ", style) for i, (text, style) in enumerate(r)])
    return out


def _emit(console, lines: list[list[tuple[str, str]]]) -> None:
    from rich.text import Text

    text = Text(no_wrap=True, overflow="ignore")
    for line in lines:
        while len(line) > 1 and not line[-1][0].strip():
            line = line[:-1]
        for i, (segment, style) in enumerate(line):
            text.append(segment.rstrip() if i == len(line) - 1 else segment, style=style or None)
        text.append("\n")
    console.print(text, end="", crop=False, soft_wrap=True)


def render_text(cmp: Comparison, console) -> None:
    """Print the table (three lines per run: final, best, auc), the legend, the notes and the config diff."""
    from rich.text import Text

    headers = ["run", "algo", "status", "steps", "time", "reward", "stat"] + [header(m) for m in cmp.metrics]
    headers.append("marks")
    rows: list[list[tuple[str, str]]] = []
    for row in cmp.rows:
        lead = [
            (row.label, ""),
            (algo_text(row), ""),
            (row.status, _status_style(row.status)),
            (fmt_num(row.steps) if row.steps is not None else MISSING, ""),
            (fmt_duration(row.duration_s, row.ongoing), ""),
            (row.spark or MISSING, ""),
        ]
        for i, stat in enumerate(STATS):
            cells = list(lead) if i == 0 else [("", "")] * len(lead)
            cells.append((stat, "dim"))
            for m in cmp.metrics:
                s = row.summaries.get(m.key)
                if s is None:
                    cells.append((MISSING if i == 0 else "", ""))
                elif stat == "best" and m.direction is Direction.NEUTRAL:
                    cells.append(("", ""))
                else:
                    best = _is_best(cmp, row, m.key, stat)
                    cells.append((fmt_num(s.get(stat)) + ("*" if best else ""), "bold green" if best else ""))
            cells.append(("; ".join(row.marks) if i == 0 else "", "yellow"))
            rows.append(cells)
    console.print(Text(f"{len(cmp.rows)} run(s) from {cmp.tracking_uri}", style="bold"))
    _emit(console, _grid(headers, rows))
    console.print(Text(LEGEND + "; algo~ derived from verl params", style="dim"))
    for note in cmp.notes:
        console.print(Text("note: " + note, style="yellow"))
    render_diff_text(cmp, console)


def _status_style(status: str) -> str:
    if status in ("SUCCEEDED", "FINISHED"):
        return "green"
    if status.startswith("RUNNING") or status in ("PENDING", "SCHEDULED"):
        return "cyan"
    return "red"


def _prov_text(prov: dict[str, Any] | None) -> str:
    if not prov or not prov.get("source") or prov["source"] == "verl default":
        return ""
    text = f"({prov['source']}" + (f": {prov['reason']}" if prov.get("reason") else "") + ")"
    return text if len(text) <= PROV_WIDTH else text[: PROV_WIDTH - 2] + "…)"


PROV_WIDTH = 48  # provenance reasons are cut in the terminal; json, md and html carry them whole


WIDE_DIFF = 6  # more runs than this: one row per run, one column per key (provenance is in json/md/html)


def render_diff_text(cmp: Comparison, console) -> None:
    from rich.text import Text

    d = cmp.diff
    if len(cmp.rows) < 2:
        return
    if not d.entries:
        console.print(Text(f"config: all {d.identical} keys identical", style="dim"))
        return
    runs = [r for r in cmp.rows if r.run_id not in d.without_params]
    console.print(Text(f"\nconfig diff: {len(d.entries)} key(s) differ, {d.identical} identical", style="bold"))
    if len(runs) > WIDE_DIFF:
        rows = [
            [(r.label, "")] + [(MISSING if (v := e.values.get(r.run_id)) is None else v, "") for e in d.entries]
            for r in runs
        ]
        _emit(console, _grid(["run"] + [e.key for e in d.entries], rows))
        return
    rows = []
    for section, entries in d.sections().items():
        rows.append([(f"[{section}]", "bold")] + [("", "")] * len(runs))
        for e in entries:
            short = e.key[len(section) + 1 :] if e.key.startswith(section + ".") else e.key
            rows.append(
                [("  " + short, "")] + [(MISSING if (v := e.values.get(r.run_id)) is None else v, "") for r in runs]
            )
            provs = [_prov_text(e.provenance.get(r.run_id)) for r in runs]
            if any(provs):
                rows.append([("", "")] + [(p, "dim") for p in provs])
    _emit(console, _grid(["key"] + [r.label for r in runs], rows))


# ---- JSON, CSV, Markdown -----------------------------------------------------------------------------------------


def to_json(cmp: Comparison) -> dict[str, Any]:
    return cmp.to_dict()


def to_csv(cmp: Comparison) -> str:
    """One row per run; each metric gives `<key>:final`, `<key>:best`, `<key>:auc` columns (empty when missing)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["run_id", "name", "experiment", "algorithm", "algorithm_source", "status", "steps", "duration_s"]
    for m in cmp.metrics:
        head += [f"{m.key}:{st}" for st in STATS]
    head += ["best_in", "marks"]
    w.writerow(head)
    for r in cmp.rows:
        line: list[Any] = [
            r.run_id,
            r.info.name,
            r.info.experiment,
            r.algorithm or "",
            r.algorithm_source,
            r.status,
            "" if r.steps is None else r.steps,
            "" if r.duration_s is None else round(r.duration_s, 3),
        ]
        wins = []
        for m in cmp.metrics:
            s = r.summaries.get(m.key)
            for st in STATS:
                v = s.get(st) if s else None
                line.append("" if v is None else repr(v) if isinstance(v, float) else v)
                if _is_best(cmp, r, m.key, st):
                    wins.append(f"{m.key}:{st}")
        line += [" ".join(wins), "; ".join(r.marks)]
        w.writerow(line)
    return buf.getvalue()


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(cmp: Comparison) -> str:
    """A GitHub-flavoured Markdown table (best values in bold) followed by the config diff."""
    cols = ["run", "algo", "status", "steps", "time", "reward"] + [header(m) for m in cmp.metrics] + ["marks"]
    lines = ["| " + " | ".join(_md_escape(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in cmp.rows:
        cells = [
            r.label,
            algo_text(r),
            r.status,
            fmt_num(r.steps) if r.steps is not None else MISSING,
            fmt_duration(r.duration_s, r.ongoing),
            r.spark or MISSING,
        ]
        for m in cmp.metrics:
            cells.append(" / ".join(f"**{p}**" if b else p for p, b in _cell_parts(cmp, r, m)))
        cells.append("; ".join(r.marks))
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    lines += ["", f"_{LEGEND}; algo~ derived from verl params_"]
    lines += [f"> note: {_md_escape(n)}" for n in cmp.notes]
    d = cmp.diff
    if len(cmp.rows) > 1:
        lines += ["", f"### Config diff: {len(d.entries)} key(s) differ, {d.identical} identical", ""]
        rows = [r for r in cmp.rows if r.run_id not in d.without_params]
        if d.entries:
            lines.append("| key | " + " | ".join(_md_escape(r.label) for r in rows) + " |")
            lines.append("|" + "---|" * (len(rows) + 1))
            for e in d.entries:
                vals = []
                for r in rows:
                    v = e.values.get(r.run_id)
                    prov = e.provenance.get(r.run_id) or {}
                    src = prov.get("source")
                    if src == SMOKE_SOURCE:  # the full-size value it replaced is the point
                        src += f": {prov.get('reason')}"
                    vals.append(
                        (MISSING if v is None else f"`{v}`") + (f" ({src})" if src and src != "verl default" else "")
                    )
                lines.append(f"| `{e.key}` | " + " | ".join(_md_escape(v) for v in vals) + " |")
    return "\n".join(lines) + "\n"


# ---- HTML ----------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
.best{font-weight:bold;color:#0a7a2f} .mark{color:#a65e00} .dim{color:#777;font-size:11px}
.spark{font-family:monospace;letter-spacing:-1px} tr.section td{background:#fafafa;font-weight:bold}
img{max-width:100%;border:1px solid #ddd}
.charts{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0} figcaption{font-family:monospace;font-size:13px}
"""


def to_html(
    cmp: Comparison,
    png: bytes | None = None,
    title: str = "rlx compare runs",
    charts: Sequence[tuple[str, bytes]] = (),
    smooth: float = 0.0,
    health: Sequence[str] = (),
) -> str:
    """One self-contained page (inline CSS, images as data: URIs): the table, the curves, the config diff and, given
    `health` (one HTML section per run, rendered by `rlx.doctor.report.render_html`), each run's health checks. The
    caller renders them: compare comes before the doctor, which reads runs through it.

    `charts` are one PNG per metric (`rlx.compare.plot.render_each`): each is a figure whose caption is the full
    metric key as text, so the page can be searched and read by a screen reader. `png` is a single figure instead.
    """
    import base64

    e = html.escape
    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p class='dim'>{len(cmp.rows)} run(s) from {e(cmp.tracking_uri)}</p>",
        "<table><tr>",
    ]
    cols = ["run", "algo", "status", "steps", "time", "reward"] + [header(m) for m in cmp.metrics] + ["marks"]
    out += [f"<th>{e(c)}</th>" for c in cols] + ["</tr>"]
    for r in cmp.rows:
        out.append("<tr>")
        out += [
            f"<td title='{e(r.run_id)}'>{e(r.label)}</td>",
            f"<td>{e(algo_text(r))}</td>",
            f"<td>{e(r.status)}</td>",
            f"<td class='num'>{e(fmt_num(r.steps) if r.steps is not None else MISSING)}</td>",
            f"<td class='num'>{e(fmt_duration(r.duration_s, r.ongoing))}</td>",
            f"<td class='spark'>{e(r.spark or MISSING)}</td>",
        ]
        for m in cmp.metrics:
            parts = [f"<span class='best'>{e(p)}</span>" if b else e(p) for p, b in _cell_parts(cmp, r, m)]
            out.append("<td class='num'>" + "<br>".join(parts) + "</td>")
        out.append(f"<td class='mark'>{e('; '.join(r.marks))}</td></tr>")
    out.append("</table>")
    out.append(f"<p class='dim'>{e(LEGEND)}; algo~ derived from verl params</p>")
    out += [f"<p class='mark'>note: {e(n)}</p>" for n in cmp.notes]
    if charts:
        out.append("<h2>Curves</h2><div class='charts'>")
        for key, chart in charts:
            label = key + (f" (EMA {smooth:g})" if smooth else "")
            out.append(
                f"<figure><img alt='{e(label)} against step, one line per run' src='data:image/png;base64,"
                + base64.b64encode(chart).decode("ascii")
                + f"'><figcaption>{e(label)}</figcaption></figure>"
            )
        out.append("</div>")
    elif png:
        out.append(
            "<h2>Curves</h2><img alt='metric curves' src='data:image/png;base64,"
            + base64.b64encode(png).decode("ascii")
            + "'>"
        )
    d = cmp.diff
    if len(cmp.rows) > 1:
        out.append(f"<h2>Config diff</h2><p class='dim'>{len(d.entries)} key(s) differ, {d.identical} identical</p>")
        rows = [r for r in cmp.rows if r.run_id not in d.without_params]
        if d.entries:
            out.append("<table><tr><th>key</th>" + "".join(f"<th>{e(r.label)}</th>" for r in rows) + "</tr>")
            for section, entries in d.sections().items():
                out.append(f"<tr class='section'><td colspan='{len(rows) + 1}'>{e(section)}</td></tr>")
                for en in entries:
                    cells = []
                    for r in rows:
                        v = en.values.get(r.run_id)
                        prov = en.provenance.get(r.run_id) or {}
                        src = prov.get("source")
                        extra = (
                            (
                                f"<br><span class='dim'>{e(src)}"
                                + (f": {e(prov['reason'])}" if prov.get("reason") else "")
                                + "</span>"
                            )
                            if src and src != "verl default"
                            else ""
                        )
                        cells.append(f"<td>{e(MISSING if v is None else v)}{extra}</td>")
                    out.append(f"<tr><td><code>{e(en.key)}</code></td>{''.join(cells)}</tr>")
            out.append("</table>")
    if health:
        out.append("<h2>Health (rlx runs doctor)</h2>")
        out += list(health)
    out.append("</body></html>")
    return "\n".join(out)
