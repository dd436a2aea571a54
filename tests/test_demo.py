"""`egobench demo`: the README's first command, end to end on the demo split."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from click.testing import CliRunner

from egobench.cli import main


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.ids, self.text = [], set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a["src"])
        if "id" in a:
            self.ids.add(a["id"])

    def handle_data(self, data):
        self.text.append(data)


def test_demo_command_writes_a_page_with_table_and_grid(tmp_path):
    r = CliRunner().invoke(main, ["demo", "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert r.exit_code == 0, r.output
    page = tmp_path / "runs" / "demo" / "report" / "index.html"
    assert f"report: {page.resolve()}" in r.output
    p = _Collect()
    p.feed(page.read_text())
    assert {"metrics", "grid", "not-comparable"} <= p.ids
    text = " ".join(p.text)
    assert "input-copy" in text and "oracle" in text and "psnr" in text and "lpips" in text
    assert "egobench-v2" in text
    # the full report of the same runs: egobench-v2's action-faithfulness table with its ceiling (oracle),
    # floor and input-copy rows, linked from the page; the given input-copy run is used (no extra run made)
    assert "links" in p.ids
    tables = (page.parent / "tables" / "index.html").read_text()
    action = tables[tables.index("Action faithfulness"):]
    action = action[:action.index("</table>")]
    assert all(f">{m}" in action or f"{m} " in action for m in ("input-copy", "oracle")), action[:400]
    assert "Sensitivity" in action and "Action-sim" in action
    # the VLM judge (egobench-v2's) scored the method's first images: its columns are on the page
    from reports.demo import JUDGE_SAMPLES

    assert "judge" in p.ids and "judge-table" in p.ids
    assert all(h in text for h in ("judge-action", "judge-scene", "judge-quality", "unparsed"))
    # input | output | target for every demo sample, all present on disk
    from egobench.data import load_split

    assert len(p.imgs) == 3 * len(load_split("demo"))
    for src in p.imgs:
        assert (page.parent / src).is_file(), src
    # the second demo regenerates nothing: every run's images are the same files (bytes and
    # modification times: an image written again, even identical, gets a new mtime), its
    # manifest differs only in what every call records (PER_CALL), and its log shows one generation
    found = sorted(p.parent for p in (tmp_path / "runs").rglob("manifest.json"))
    assert len(found) == 4  # the strongest method, input-copy, oracle, the judge's evaluation
    judged = [r for r in found if (r / "logs" / "evaluate.log").is_file()]
    runs = [r for r in found if r not in judged]
    assert len(judged) == 1 and len(runs) == 3
    judge = json.loads((judged[0] / "metrics.json").read_text())["metrics"]["vlm-judge"]
    assert judge["n"] + judge["n_parse_failures"] == JUDGE_SAMPLES  # every answer parsed or counted unparsed
    assert "+judge" in json.loads((judged[0] / "metrics.json").read_text())["protocol"]["name"]
    before = {run: _snapshot(run) for run in runs}
    assert all(images for images, _ in before.values())
    r2 = CliRunner().invoke(main, ["demo", "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert r2.exit_code == 0, r2.output
    assert sorted(p.parent for p in (tmp_path / "runs").rglob("manifest.json")) == found
    # the judge's evaluation comes from the run cache the second time: no answer is generated again
    reused = json.loads((judged[0] / "manifest.json").read_text())["run_cache"]
    assert reused["misses"] == 0 and reused["hits"] > 0, reused
    for run in runs:
        images, manifest = _snapshot(run)
        assert images == before[run][0], run
        assert manifest == before[run][1], run
        log = (run / "logs" / "run.log").read_text()
        starts = re.findall(r"egobench: run \w+: method ", log)
        assert len(starts) == 2 and log.count("egobench: generating ") == 1, log
    assert f"report: {page.resolve()}" in r2.output


#: manifest keys every call rewrites: when, the caches' hits of this call, and the environment
#: (packages, git commit) of this call
PER_CALL = ("updated", "feature_cache", "run_cache", "environment")


def _snapshot(run):
    images = {p.relative_to(run).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
              for p in sorted((run / "images").rglob("*")) if p.is_file()}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["state"] == "complete"
    return images, {k: v for k, v in manifest.items() if k not in PER_CALL}
