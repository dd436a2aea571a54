"""LaTeX (booktabs) rendering of :mod:`reports.tables`.

``render_document`` writes a complete ``article`` that compiles with pdflatex
(packages: booktabs, textcomp via the kernel); ``render_table`` gives one
``table`` environment to paste into a paper. Every string from a run or a
dataset goes through :func:`latex_escape`.
"""

from __future__ import annotations

import re

from egobench.evaluator import NOT_COMPARABLE

from .tables import Table

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    "'": r"\textquotesingle{}",
    "`": r"\textasciigrave{}",
    "[": "{[}",  # after a row's "\\" a "[" would be read as a length
    "]": "{]}",
    "\u2193": r"$\downarrow$",
    "\u2191": r"$\uparrow$",
    "\u2020": r"$^\dagger$",
    "\u2021": r"$^\ddagger$",
}
_RE = re.compile("|".join(re.escape(k) for k in _SPECIAL))


def latex_escape(text: object) -> str:
    """Escape ``text`` for LaTeX text mode: \\ { } $ & # ^ _ % ~ < > | and quotes
    become commands; other non-ASCII characters are kept (UTF-8 input)."""
    s = _RE.sub(lambda m: _SPECIAL[m.group(0)], str(text))
    # no ligatures / special dashes from "--", "``" sequences of dataset text
    s = s.replace("--", "-{}-").replace("\n", " ").replace("\r", " ")
    return s


def _cell(c, with_ci: bool) -> str:
    text = latex_escape(c.text)
    if c.best:
        text = rf"\textbf{{{text}}}"
    if c.behind:
        text += r"$^\dagger$"
    if c.not_above_copy:
        text += r"$^\ddagger$"
    extra = []
    if with_ci and c.ci is not None:
        extra.append(rf"{{\scriptsize[{latex_escape(c.ci_text[1:-1])}]}}")
    if c.delta is not None:
        extra.append(rf"{{\scriptsize {latex_escape(c.delta_text)} vs pub.}}")
    if extra:  # stacked under the value: keeps the columns narrow
        text = r"\begin{tabular}[t]{@{}r@{}}" + r" \\ ".join([text] + extra) + r"\end{tabular}"
    return text


def render_table(t: Table, *, with_ci: bool = False) -> str:
    ncol = len(t.columns)
    head = " & ".join(
        [latex_escape(t.row_head), "n"]
        + [latex_escape(c.label) + ("" if c.higher_is_better else r" $\downarrow$") for c in t.columns])
    lines = [r"\begin{table}[!htbp]", r"\centering"]
    if t.number is not None:
        # LaTeX numbers captions itself: the paper's number, and the title without "Table N:"
        lines += [rf"\setcounter{{table}}{{{t.number - 1}}}", rf"\caption{{{latex_escape(t.caption)}}}"]
    else:
        lines.append(rf"\textbf{{{latex_escape(t.title)}}}\par\smallskip")
    lines += [
        rf"\label{{tab:{re.sub(r'[^A-Za-z0-9:-]', '-', t.id)}}}",
        r"\begin{tabular}{ll" + "r" * ncol + "}",
        r"\toprule",
        head + r" \\",
        r"\midrule",
    ]
    prev = "measured"
    for r in t.rows:
        if r.kind == "published" and prev != "published" and r is not t.rows[0]:
            lines.append(r"\midrule")
        prev = r.kind
        label = latex_escape(r.label) + (rf"$^{{[{r.ref}]}}$" if r.ref else "")
        if r.kind == "published":
            label = rf"\textit{{{label}}}"
        n = "" if r.n is None else str(r.n)
        lines.append(" & ".join([label, n] + [_cell(c, with_ci) for c in r.cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = ([t.protocol_line] if t.kind != "published" else []) + ([] if t.comparable else [
        NOT_COMPARABLE + "."]) + [f"[{r.ref}] {r.source}" for r in t.sources] + t.notes
    lines.append(r"\par\smallskip{\footnotesize " + r" \\{} ".join(latex_escape(n) for n in notes) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def render_document(tables: list[Table], *, title: str = "egobench report", comparable: bool = True,
                    with_ci: bool = True) -> str:
    parts = [
        r"\documentclass[10pt]{article}",
        r"\usepackage[utf8]{inputenc}",
        r"\usepackage[T1]{fontenc}",
        r"\usepackage{textcomp}",
        r"\usepackage{booktabs}",
        r"\usepackage[margin=2cm,landscape]{geometry}",
        r"\begin{document}",
        rf"\section*{{{latex_escape(title)}}}",
        r"\suppressfloats[t]",  # no table floats above the title on its page
    ]
    if not comparable:
        parts.append(r"\noindent\fbox{\parbox{\linewidth}{\textbf{Not comparable with published numbers:} made "
                     r"with tiny-zoo (random) metric weights and/or the synthetic demo split.}}")
    if not tables:
        parts.append("No tables: the runs cover none of the paper's table layouts.")
    for t in tables:
        parts.append(render_table(t, with_ci=with_ci))
    parts.append(r"\end{document}")
    return "\n".join(parts) + "\n"
