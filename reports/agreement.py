"""The report's user-study sections: which metric agrees with the raters, and the ranking from their votes.

Made from :func:`egobench.agreement.agree` (the same numbers ``egobench agree`` prints) when the report is
given the study (``--study DIR --results CSV``):

* an agreement table -- metric | pairwise accuracy | Kendall tau | ceiling, each with its 95% bootstrap
  interval over items in brackets (the raters' leave-one-rater-out accuracy is the ceiling);
* a ranking table -- per method the Bradley-Terry / Plackett-Luce log-strength with its bootstrap
  interval, the model's choice probability and the study's win rate beside it; and a plot of the strengths.
"""

from __future__ import annotations

import math
from typing import Any

from .tables import DATASET_NAMES, LABELS, Cell, Column, Row, Table, _num

AGREEMENT, RANKING = "agreement", "ranking"


def _cell(v: float | None, lo: float | None = None, hi: float | None = None, scale: float = 1.0) -> Cell:
    if v is None or not math.isfinite(v):
        return Cell(None, "n/a")
    ci = (lo * scale, hi * scale) if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi) \
        else None
    return Cell(v, _num(v * scale), ci, display=v * scale)


def _bold(t: Table) -> None:
    for j, col in enumerate(t.columns):
        vals = [r.cells[j].value for r in t.rows if r.cells[j].value is not None]
        if len(vals) > 1:
            best = max(vals) if col.higher_is_better else min(vals)
            for r in t.rows:
                r.cells[j].best = r.cells[j].value == best


def agreement_tables(res: Any) -> list[Table]:
    """The agreement and ranking tables of an :class:`egobench.agreement.Agreement`."""
    ds = res.dataset or "study"
    name = DATASET_NAMES.get(ds, ds)
    c = res.ceiling
    ceiling = _cell(c["pairwise_accuracy"], c["accuracy_ci_low"], c["accuracy_ci_high"], 100.0)
    cols = [Column("pairwise_accuracy", "Pairwise acc.", True), Column("tau", "Kendall tau", True),
            Column("ceiling", "Ceiling (raters)", True)]
    rows = []
    for metric, m in res.metrics.items():
        rows.append(Row(LABELS.get(metric, metric), metric, [
            _cell(m["pairwise_accuracy"], m["accuracy_ci_low"], m["accuracy_ci_high"], 100.0),
            _cell(m["tau"], m["tau_ci_low"], m["tau_ci_high"]),
            Cell(ceiling.value, ceiling.text, ceiling.ci, display=ceiling.display)], n=int(m["pairs"])))
    agree_t = Table(f"{AGREEMENT}-{ds}", f"Agreement of each metric with the user study on {name}", ds, cols, rows,
                    list(res.protocols), row_head="Metric", kind=AGREEMENT)
    _bold_metrics(agree_t)
    agree_t.notes += [
        "Pairwise acc. (x100): over every pair of an item's candidates whose vote counts differ, how often the "
        "metric prefers the candidate with more votes (metric ties count half); Kendall tau: tau-b between the "
        "metric's values and the vote counts per item, mean over items; Ceiling: the same accuracy for each "
        "rater's choice against the other raters' votes (leave-one-rater-out), what a metric can hope for. "
        "Brackets: 95% percentile bootstrap over items. n: candidate pairs scored.",
        f"{res.n_items} items, {res.n_judgments} judgments"
        + (f"; raters left out (failed the attention checks): {', '.join(res.excluded_raters)}"
           if res.excluded_raters else "") + ".",
    ]
    if res.skipped:
        agree_t.notes.append("Not compared: " + "; ".join(f"{k} ({why})" for k, why in res.skipped.items()) + ".")
    ranked = sorted(res.rankings.items(), key=lambda kv: -kv[1]["strength"] if math.isfinite(kv[1]["strength"])
                    else math.inf)
    rcols = [Column("strength", "BT strength", True), Column("choice_probability", "P(chosen)", True),
             Column("win_rate", "Win rate", True, "%")]
    rrows = []
    for method, r in ranked:
        w = res.win_rates.get(method) or {}
        rrows.append(Row(method, method, [
            _cell(r["strength"], r["ci_low"], r["ci_high"]), _cell(r["choice_probability"], scale=100.0),
            _cell(w.get("rate"), w.get("ci_low"), w.get("ci_high"))],
            n=int(w["votes"]) if isinstance(w.get("votes"), int) else None))
    rank_t = Table(f"{RANKING}-{ds}", f"Ranking from the user study on {name} (Bradley-Terry / Plackett-Luce)", ds,
                   rcols, rrows, list(res.protocols), row_head="Method", kind=RANKING)
    _bold(rank_t)
    rank_t.notes.append(
        "BT strength: log-strength of Luce's choice model fitted to every kept judgment's choice (Plackett-Luce "
        "top-1; Bradley-Terry for two candidates), choix I-LSR with alpha 0.01, centred on the mean; P(chosen) "
        "(x100): the model's probability of the method being chosen among all of them; Win rate (%): share of "
        "the judgments that chose it (as import-amt). Brackets: 95% percentile bootstrap over items. n: votes.")
    return [agree_t, rank_t]


def _bold_metrics(t: Table) -> None:
    """Bold the best metric per column, never the ceiling column (the same on every row)."""
    for j, col in enumerate(t.columns):
        if col.key == "ceiling":
            continue
        vals = [r.cells[j].value for r in t.rows if r.cells[j].value is not None]
        if len(vals) > 1:
            best = max(vals)
            for r in t.rows:
                r.cells[j].best = r.cells[j].value == best


def ranking_plot(t: Table) -> tuple[str, str]:
    """(title, SVG) of a ranking table's strengths with their intervals."""
    from egobench.plots import bar_chart_svg

    labels = [r.label for r in t.rows]
    cells = [r.cells[0] for r in t.rows]
    title = f"Bradley-Terry strength (log, centred) on {DATASET_NAMES.get(t.dataset, t.dataset)}"
    svg = bar_chart_svg(labels, [c.display for c in cells], [c.ci[0] if c.ci else None for c in cells],
                        [c.ci[1] if c.ci else None for c in cells], title=title)
    return title, svg
