"""Crowd study export / import (egobench.userstudy): blinding, escaping, parsing, statistics."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egobench.errors import DataError
from egobench.userstudy import (
    analyze,
    export_amt,
    fleiss_kappa,
    import_amt,
    layout_variables,
    read_results,
    stratified_sample,
)
from tests.conftest import STUDY_METHODS

METHODS = STUDY_METHODS
NASTY = "<script>alert(1)</script> & 100% of_x {a} \"dq\" 'sq' ~^$#\\"


def nasty_copy(src: Path, dst: Path, action: str = NASTY, description: str = NASTY) -> Path:
    """A copy of a run whose dataset strings are hostile."""
    shutil.copytree(src, dst)
    df = pd.read_parquet(dst / "samples.parquet")
    df["action"] = action
    df["description"] = description
    df["output"] = [str(src / o) for o in df["output"]]
    df.to_parquet(dst / "samples.parquet", index=False)
    return dst


def results_csv(batch: Path, answers: dict[tuple[str, str], str], field: str = "choice",
                encoding: str = "value", extra_rows: list[list[str]] | None = None) -> str:
    """A results file in the requester site's layout for (worker, item) -> answer."""
    with open(batch, newline="") as f:
        rows = list(csv.DictReader(f))
    inputs = list(rows[0])
    values = sorted({a for a in answers.values()})
    header = ["HITId", "HITTypeId", "Title", "WorkerId", "AssignmentId", "AssignmentStatus", "WorkTimeInSeconds"]
    header += [f"Input.{c}" for c in inputs]
    if encoding == "value":
        header += [f"Answer.{field}"]
    else:
        header += [f"Answer.{field}.{v}" for v in values]
    header += ["Approve", "Reject"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    hit = {r["item_id"]: f"HIT{i:04d}" for i, r in enumerate(rows)}
    by_item = {r["item_id"]: r for r in rows}
    for n, ((worker, item), ans) in enumerate(sorted(answers.items())):
        rec = [hit[item], "TYPE", "Pick the image", worker, f"A{n}", "Submitted", "33"]
        rec += [by_item[item][c] for c in inputs]
        rec += [ans] if encoding == "value" else [("true" if v == ans else "false") for v in values]
        rec += ["", ""]
        w.writerow(rec)
    for r in extra_rows or []:
        w.writerow(r)
    return buf.getvalue()


def _export(runs, out, **kw):
    kw.setdefault("n", 6)
    kw.setdefault("seed", 3)
    return export_amt("demo", [runs[m] for m in METHODS], out, **kw)


def test_export_is_blind_and_reproducible(runs, tmp_path):
    res = _export(runs, tmp_path / "a", attention_checks=2, image_base_url="https://cdn.example.org/study1/")
    up = tmp_path / "a" / "upload"
    assert res.key_json.parent == tmp_path / "a" / "private" and not (up / "key.json").exists()
    rows = list(csv.DictReader(open(res.batch_csv, newline="")))
    assert len(rows) == 6 + 2
    layout = res.task_html.read_text()
    assert 'src="https://assets.crowd.aws/crowd-html-elements.js"' in layout and "<crowd-form>" in layout
    assert set(layout_variables(layout)) <= set(rows[0])
    assert list(rows[0]) == ["item_id", "input_image_url", "action", "candidate_1_url", "candidate_2_url",
                             "candidate_3_url"]
    for r in rows:
        for c in r:
            if c.endswith("_url"):
                assert r[c].startswith("https://cdn.example.org/study1/")
                assert (up / "images" / r[c].rsplit("/", 1)[1]).is_file()
    # nothing uploaded names a method or a run
    forbidden = [m.encode() for m in ("input-copy", "oracle", "SlowCopy", "slow-copy", "tests.plugins")]
    forbidden += [str(p).encode() for p in runs.values()] + [str(tmp_path).encode(), b"runs/"]
    for f in up.rglob("*"):
        assert not any(x.decode().lower() in f.name.lower() for x in forbidden)
        if f.is_file():
            data = f.read_bytes().lower()
            assert not any(x.lower() in data for x in forbidden), f
    # the key maps every slot back; the slots are shuffled per item
    key = json.loads(res.key_json.read_text())
    study = [k for k in key["items"].values() if k["kind"] == "study"]
    att = [k for k in key["items"].values() if k["kind"] == "attention"]
    assert len(study) == 6 and len(att) == 2 and all(a["expected"].startswith("candidate_") for a in att)
    orders = {tuple(s["slots"][f"candidate_{k}"]["method"] for k in (1, 2, 3)) for s in study}
    assert len(orders) > 1
    assert all(sorted(o) == sorted(METHODS) for o in orders)
    # same seed -> same batch (names, order, shuffles)
    res2 = _export(runs, tmp_path / "b", attention_checks=2, image_base_url="https://cdn.example.org/study1/")
    assert res2.batch_csv.read_bytes() == res.batch_csv.read_bytes()
    assert (tmp_path / "b" / "preview.html").read_text() == (tmp_path / "a" / "preview.html").read_text()


def test_stratified_sample_spreads_over_domains_and_clips():
    rows = [(f"e{i}", "ego4d", f"c{i // 4}") for i in range(40)] + [(f"k{i}", "epic", f"p{i // 2}") for i in range(20)]
    got = stratified_sample(rows, 12, np.random.default_rng(0))
    assert len(got) == len(set(got)) == 12
    assert sum(g.startswith("e") for g in got) == 8  # 40:20 -> 8:4
    assert len({int(g[1:]) // 4 for g in got if g.startswith("e")}) == 8  # one per clip before repeating
    assert got == stratified_sample(rows, 12, np.random.default_rng(0))


def _answers(key: dict, workers: list[str], prefer: str, bad_worker: str | None, rng) -> dict:
    answers = {}
    for item, k in key["items"].items():
        for w in workers:
            if k["kind"] == "attention":
                wrong = [s for s in k["slots"] if s != k["expected"]]
                answers[(w, item)] = wrong[0] if w == bad_worker else k["expected"]
            else:
                slots = list(k["slots"])
                pref = next(s for s in slots if k["slots"][s]["method"] == prefer)
                answers[(w, item)] = pref if rng.random() < 0.7 else slots[int(rng.integers(len(slots)))]
    return answers


def test_import_win_rates_kappa_and_rater_filter(runs, tmp_path):
    res = _export(runs, tmp_path / "ex", attention_checks=3)
    key = json.loads(res.key_json.read_text())
    workers = [f"W{i}" for i in range(5)]
    ans = _answers(key, workers, "oracle", "W4", np.random.default_rng(0))
    (tmp_path / "results.csv").write_text(results_csv(res.batch_csv, ans))
    study, out = import_amt(tmp_path / "results.csv", res.key_json, tmp_path / "us", seed=1)
    rates = study.rates
    assert set(rates) == set(METHODS)
    assert abs(sum(r["rate"] for r in rates.values()) - 100.0) < 1e-9
    for r in rates.values():
        assert r["ci_low"] <= r["rate"] <= r["ci_high"]
    assert max(rates, key=lambda m: rates[m]["rate"]) == "oracle"
    assert study.excluded == ["W4"]
    assert study.n_judgments == 6 * 4
    assert study.kappa is not None and -1 <= study.kappa <= 1 and study.kappa_raters == 4
    by = {r["worker"]: r for r in study.raters}
    assert by["W4"]["attention_pass_rate"] == 0 and by["W0"]["attention_pass_rate"] == 1
    assert by["W0"]["judgments"] == 6 and 0 <= by["W0"]["agreement_with_majority"] <= 1
    saved = json.loads((out / "userstudy.json").read_text())
    assert saved["methods"]["oracle"]["rate"] == rates["oracle"]["rate"]
    assert (out / "winrate.svg").read_text().startswith("<svg") and (out / "raters.csv").is_file()
    # crowd-radio style boolean columns parse the same way
    (tmp_path / "results2.csv").write_text(results_csv(res.batch_csv, ans, encoding="flags"))
    study2, _ = import_amt(tmp_path / "results2.csv", res.key_json, seed=1)
    assert study2.rates == rates
    # without filtering, W4 counts
    study3, _ = import_amt(tmp_path / "results.csv", res.key_json, min_attention=0.0, seed=1)
    assert study3.excluded == [] and study3.n_judgments == 6 * 5


def test_malformed_results_name_file_and_line(runs, tmp_path):
    res = _export(runs, tmp_path / "ex", n=3)
    key = json.loads(res.key_json.read_text())
    items = list(key["items"])
    ans = {(w, it): "candidate_1" for w in ("A", "B") for it in items}
    good = results_csv(res.batch_csv, ans)
    lines = good.split("\r\n")
    cases = {
        "truncated": ("\r\n".join(lines[:3] + [lines[3][: len(lines[3]) // 2]]) + "\r\n", "line 4"),
        "bad-answer": (good.replace(",candidate_1,,", ",candidate_9,,", 1), "line 2"),
        "unknown-item": (good.replace(items[0], "deadbeefdeadbeef", 2), "line"),
        "no-column": (good.replace("WorkerId", "Worker", 1), "line 1"),
        "empty-answer": ("\r\n".join(lines[:2] + [",".join(lines[2].split(",")[:-3] + ["", "", ""])] + lines[3:]),
                         "line 3"),
    }
    for name, (text, where) in cases.items():
        p = tmp_path / f"{name}.csv"
        p.write_text(text)
        with pytest.raises(DataError) as e:
            read_results(p, key)
            pytest.fail(f"{name}: no error")
        msg = str(e.value)
        assert str(p) in msg and where in msg and "\n" not in msg, (name, msg)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        read_results(tmp_path / "empty.csv", key)


def test_description_study_roundtrip(runs, tmp_path):
    res = export_amt("demo", [runs["oracle"]], tmp_path / "d", n=4, study="description", attention_checks=2, seed=5)
    rows = list(csv.DictReader(open(res.batch_csv, newline="")))
    assert list(rows[0]) == ["item_id", "input_image_url", "target_image_url", "action", "description"]
    assert len(rows) == 6
    key = json.loads(res.key_json.read_text())
    ans = {}
    for item, k in key["items"].items():
        for i, w in enumerate(("a", "b", "c")):
            ans[(w, item)] = "no" if k["kind"] == "attention" else ("yes" if i < 2 else "no")
    (tmp_path / "r.csv").write_text(results_csv(res.batch_csv, ans, field="aligned"))
    study, _ = import_amt(tmp_path / "r.csv", res.key_json)
    assert study.study == "description"
    assert abs(study.rates["oracle"]["rate"] - 200 / 3) < 1e-9


def test_amt_escaping(runs, tmp_path):
    a = nasty_copy(runs["input-copy"], tmp_path / "r1")
    b = nasty_copy(runs["oracle"], tmp_path / "r2")
    res = export_amt("demo", [a, b], tmp_path / "ex", n=2, seed=0)
    rows = list(csv.DictReader(open(res.batch_csv, newline="", encoding="utf-8")))
    assert all(r["action"] == NASTY for r in rows)  # the CSV round-trips the label exactly
    assert NASTY not in res.task_html.read_text()
    preview = res.preview_html.read_text()
    assert "<script>alert" not in preview and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; 100%" in preview


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _dump_dom(page: Path) -> str:
    exe = _chromium()
    with tempfile.TemporaryDirectory() as prof:
        proc = subprocess.run(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={prof}", "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium) - "
                    "the preview is checked in a real browser only where one exists")
def test_preview_renders_in_chromium(runs, tmp_path):
    from html.parser import HTMLParser

    a = nasty_copy(runs["input-copy"], tmp_path / "r1")
    b = nasty_copy(runs["oracle"], tmp_path / "r2")
    res = export_amt("demo", [a, b], tmp_path / "ex", n=3, seed=0)
    dom = _dump_dom(res.preview_html)

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.radios, self.imgs, self.scripts, self.forms, self.text = [], [], 0, 0, []

        def handle_starttag(self, tag, attrs):
            d = dict(attrs)
            if tag == "input" and d.get("type") == "radio":
                self.radios.append(d)
            elif tag == "img":
                self.imgs.append(d["src"])
            elif tag == "script":
                self.scripts += 1
            elif tag == "form":
                self.forms += 1

        def handle_data(self, data):
            self.text.append(data)

    p = P()
    p.feed(dom)
    assert p.forms == 3 and p.scripts == 0
    assert len(p.radios) == 3 * 2 and {r["value"] for r in p.radios} == {"candidate_1", "candidate_2"}
    assert len(p.imgs) == 3 * 3
    for src in p.imgs:
        assert (res.preview_html.parent / src).is_file()
    assert NASTY in "".join(p.text)  # shown literally, not interpreted


def test_fleiss_kappa_reference_values():
    # Fleiss (1971) / Wikipedia worked example: kappa = 0.210
    M = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(M) == pytest.approx(0.2099, abs=1e-3)
    assert fleiss_kappa(np.array([[5, 0], [0, 5], [5, 0]])) == pytest.approx(1.0)
    assert fleiss_kappa(np.array([[5, 0], [5, 0]])) is None  # one category only: undefined
    assert fleiss_kappa(np.array([[1, 1], [2, 1]])) is None  # unequal rater counts


def _synthetic_key(n_items: int, n_methods: int) -> dict:
    methods = [f"m{j}" for j in range(n_methods)]
    items = {}
    for i in range(n_items):
        slots = {f"candidate_{k + 1}": {"method": methods[(k + i) % n_methods]} for k in range(n_methods)}
        items[f"it{i}"] = {"kind": "study", "slots": slots, "expected": None}
    return {"study": {"type": "action", "dataset": "x", "n_candidates": n_methods,
                      "runs": [{"label": m} for m in methods]}, "items": items}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(2, 5).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.lists(st.integers(0, k - 1), min_size=1, max_size=6), min_size=1, max_size=12))))
def test_property_win_rates_sum_to_100_and_kappa_bounded(case):
    from egobench.userstudy import Judgment

    k, matrix = case
    key = _synthetic_key(len(matrix), k)
    js = [Judgment(f"it{i}", f"w{r}", f"candidate_{a + 1}", 2 + i) for i, row in enumerate(matrix)
          for r, a in enumerate(row)]
    res = analyze(js, key, n_boot=50)
    assert abs(sum(r["rate"] for r in res.rates.values()) - 100.0) < 1e-6
    for r in res.rates.values():
        assert 0 <= r["ci_low"] <= r["ci_high"] <= 100 + 1e-9
    assert res.kappa is None or -1.0 <= res.kappa <= 1.0
    assert sum(r["votes"] for r in res.rates.values()) == sum(len(row) for row in matrix)
