"""Markdown and CSV renderings of :mod:`reports.tables`.

Markdown: one pipe table per table with its notes; every string from a run or
a dataset is escaped (Markdown punctuation backslash-escaped, ``<``/``>``/``&``
as entities, so a viewer renders it as text). CSV: one long table (a line per
cell), every cell through :func:`egobench.io.csv_cell`.
"""

from __future__ import annotations

import csv
import io
import math
import re

from egobench.io import csv_row

from .tables import COPY_MARK, Table

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#|~])")  # what can start emphasis, code, links, cells


def md_escape(text: object) -> str:
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(c) -> str:
    text = md_escape(c.text)
    if c.best:
        text = f"**{text}**"
    if c.behind:
        text += "\u2020"
    if c.not_above_copy:
        text += COPY_MARK
    if c.ci is not None:
        text += " " + md_escape(c.ci_text)
    if c.delta is not None:
        text += f" ({md_escape(c.delta_text)} vs published)"
    return text


def tables_markdown(tables: list[Table], *, title: str = "egobench report", banner: str = "") -> str:
    out = [f"# {md_escape(title)}", ""]
    if banner:
        out += [f"> {md_escape(banner)}", ""]
    for t in tables:
        out += [f"## {md_escape(t.title)}", ""]
        heads = [md_escape(t.row_head), "n"] + [md_escape(c.label) + ("" if c.higher_is_better else " \u2193")
                                               for c in t.columns]
        out.append("| " + " | ".join(heads) + " |")
        out.append("|" + "---|" * len(heads))
        for r in t.rows:
            label = md_escape(r.label) + (f" [{r.ref}]" if r.ref else "")
            if r.kind == "published":
                label = f"*{label}*"
            out.append("| " + " | ".join([label, "" if r.n is None else str(r.n)] + [_md_cell(c) for c in r.cells])
                       + " |")
        out.append("")
        if t.kind != "published":
            out.append(md_escape(t.protocol_line) + "  ")
        for r in t.sources:
            out.append(f"\\[{r.ref}\\] {md_escape(r.source)}  ")
        for n in t.notes:
            out.append(md_escape(n) + "  ")
        out.append("")
    return "\n".join(out) + "\n"


CSV_HEAD = ["table", "dataset", "row", "kind", "method", "n", "source", "column", "value", "ci_low", "ci_high",
            "std", "delta_published", "best", "behind", "not_above_input_copy", "text"]


def _f(v: float | None) -> float | str:
    """A number stays a number (csv_cell passes numbers unchanged; "-1.5" as text would be quoted)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return float(v)


def tables_csv(tables: list[Table]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(csv_row(CSV_HEAD))
    for t in tables:
        for r in t.rows:
            for c, cell in zip(t.columns, r.cells):
                w.writerow(csv_row([
                    t.id, t.dataset, r.label, r.kind, r.method, "" if r.n is None else r.n, r.source, c.label,
                    _f(cell.display), _f(cell.ci[0]) if cell.ci else "", _f(cell.ci[1]) if cell.ci else "",
                    _f(cell.std), _f(cell.delta), int(cell.best), int(cell.behind),
                    int(cell.not_above_copy), cell.text]))
    return buf.getvalue()
