"""The leaderboard site (issue 16 item 4): content, escaping of hostile bundles, and a real browser.

The browser test drives Debian's headless ``chromium`` through the DevTools protocol over
``--remote-debugging-pipe`` (JSON messages ended by NUL bytes on the browser's file descriptors 3
and 4), with the standard library only; it skips, saying why, where chromium is not installed.
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from egobench.results_bundle import export_results, image_name
from reports.leaderboard import leaderboard_cmd, safe_url, write_site
from tests.conftest import one_line_error
from tests.test_results_bundle import cli, demo_runs

NASTY = "<script>window.__pwned=1</script>\"'&amp;"
NASTY_ACTION = "</script><img src=x onerror=\"window.__pwned=3\">"
NASTY_VERB = "\"><img src=x onerror=window.__pwned=4>"


@pytest.fixture
def runs(tmp_path_factory):
    return demo_runs(tmp_path_factory.getbasetemp() / "bundle-runs")


@pytest.fixture
def bundle_dir(runs, tmp_path) -> Path:
    export_results([runs["input-copy"], runs["oracle"], runs["outside"]], tmp_path / "bundle", images=True)
    return tmp_path / "bundle"


def rewrite(bundle: Path, edit) -> Path:
    doc = json.loads((bundle / "results.json").read_text())
    edit(doc)
    (bundle / "results.json").write_text(json.dumps(doc))
    return bundle


def page_data(site: Path) -> dict:
    html = (site / "index.html").read_text()
    m = re.search(r'<script type="application/json" id="lb-data">(.*?)</script>', html, re.S)
    return json.loads(m.group(1))


def make_hostile(bundle: Path) -> Path:
    def edit(doc):
        a, b = doc["results"][0], doc["results"][1]
        a["method"]["name"] = NASTY
        a["method"]["url"] = "javascript:window.__pwned=2"
        b["method"]["url"] = "https://example.org/method?a=1&b=2"
        a["samples"][0]["action"] = NASTY_ACTION
        a["samples"][1]["verb"] = NASTY_VERB
    return rewrite(bundle, edit)


def test_site_tables_published_rows_marks_gallery_and_provenance(runs, bundle_dir, tmp_path):
    from egobench.protocol import load_protocol

    # a copy of the bundle's first result as if made on Ego4D under the paper's protocol, zero-shot
    paper = tmp_path / "paper"
    shutil.copytree(bundle_dir, paper)

    def as_paper(doc):
        r = doc["results"][0]
        r["dataset"] = "ego4d"
        r["protocol"] = load_protocol("lego-official", check_metrics=False).record()
        r["method"]["training"] = "zero-shot"
        doc["results"] = [r]
    rewrite(paper, as_paper)
    site = tmp_path / "site"
    r = cli(leaderboard_cmd, bundle_dir, runs["oracle"], paper, "--out", site, "--protocol", runs["protocol"])
    assert r.exit_code == 0, r.output
    html = (site / "index.html").read_text()
    # self-contained: no external script, style sheet or image; only the page's own two script elements
    assert "<link" not in html and not re.search(r"(src|href)=\"(https?:)?//", html)
    assert html.count("<script") == 2 and "Content-Security-Policy" in html
    data = page_data(site)
    tables = {(t["dataset"], t["protocol"]["name"]): t for t in data["tables"]}
    demo = tables[("demo", "share")]
    # the oracle run folder is the bundle's oracle result: shown once, with a note
    assert "same result" in r.output and "shown once" in r.output
    assert demo["known"] and [row["label"] for row in demo["rows"]] == ["input-copy", "oracle",
                                                                        "external-outside-images"]
    assert all(row["kind"] == "measured" for row in demo["rows"])
    ic = demo["rows"][0]
    iv = json.loads((bundle_dir / "results.json").read_text())["results"][0]["metrics"]["lpips"]["interval"]
    assert ic["cells"]["lpips"]["lo"] == pytest.approx(iv["low"] * 100) and ic["cells"]["psnr"]["lo"] is not None
    assert demo["rows"][1]["cells"]["psnr"]["d"] == "inf"
    assert "outside images" in demo["rows"][2]["marks"] and "not comparable" in ic["marks"]
    # Ego4D under lego-official: the measured row and the paper's rows in one table, marked
    ego = tables[("ego4d", "lego-official")]
    kinds = [(row["label"], row["kind"]) for row in ego["rows"]]
    assert kinds[0] == ("input-copy", "measured") and "zero-shot" in ego["rows"][0]["marks"]
    assert ("LEGO (published)", "published") in kinds and len(kinds) == 5
    lego = next(row for row in ego["rows"] if row["label"] == "LEGO (published)")
    assert lego["cells"]["egovlp"]["d"] == 65.65 and lego["marks"] == ["published"]
    assert [t["dataset"] for t in data["tables"]].count("ego4d") == 1
    assert tables[("epickitchens", "lego-official")]["rows"][0]["kind"] == "published"  # reference table
    # gallery: the same samples for every row with images, re-encoded JPEGs named from the sample ids
    g = next(g for g in data["galleries"] if g["dataset"] == "demo")
    assert len(g["samples"]) == 6 and len(g["methods"]) == 3
    for row, imgs in g["images"].items():
        for i, rel in imgs.items():
            f = site / rel
            assert f.read_bytes()[:3] == b"\xff\xd8\xff"
            assert f.name == image_name(g["samples"][int(i)]["id"], "jpg") and f.parent.name == row
    # provenance per row: the result without per-sample values
    prov = json.loads((site / ic["prov"]).read_text())
    assert prov["result"]["protocol"]["hash"] == demo["protocol"]["hash"] and "samples" not in prov["result"]
    assert prov["result"]["weights"]["artifacts"]["lpips-squeeze-backbone"]["files"]


def test_export_validate_leaderboard_round_trip(runs, tmp_path):
    """The demo runs through the three commands; the page shows the bundle's numbers."""
    from egobench.results_bundle import export_results_cmd, validate_results_cmd

    bundle = tmp_path / "b"
    assert cli(export_results_cmd, runs["input-copy"], runs["outside"], "--out", bundle, "--per-sample").exit_code == 0
    r = cli(validate_results_cmd, bundle / "results.json", "--dataset", "demo", "--protocol", runs["protocol"])
    assert r.exit_code == 0 and "valid:" in r.output, r.output
    r = cli(leaderboard_cmd, bundle, "--out", tmp_path / "site", "--protocol", runs["protocol"])
    assert r.exit_code == 0 and "written:" in r.output, r.output
    doc = json.loads((bundle / "results.json").read_text())
    table = page_data(tmp_path / "site")["tables"][0]
    for row, res in zip(table["rows"], doc["results"]):
        assert row["label"] == res["method"]["name"] and row["n"] == res["n_scored"] == 6
        for key in ("psnr", "lpips"):
            m = res["metrics"][key]
            assert row["cells"][key]["d"] == pytest.approx(m["value"] * m["display_scale"])
            assert row["cells"][key]["hi"] == pytest.approx(m["interval"]["high"] * m["display_scale"])
        assert len(table["values"][row["id"]]["psnr"]) == len(table["samples"]) == 6


def test_hostile_bundle_strings_are_escaped(bundle_dir, tmp_path):
    make_hostile(bundle_dir)
    write_site([str(bundle_dir)], tmp_path / "site", title="<script>window.__pwned=5</script>")
    html = (tmp_path / "site" / "index.html").read_text()
    # every "<" of bundle data is \u003c: no tag can open, no </script> can close the data element
    assert "<script>window" not in html and "<img src=x" not in html and "\\u003cimg src=x onerror=" in html
    assert "javascript:" not in html and "&lt;script&gt;window.__pwned=5" in html
    assert html.count("<script") == 2 and html.count("</script>") == 2
    data = page_data(tmp_path / "site")
    rows = data["tables"][0]["rows"]
    assert rows[0]["label"] == NASTY and rows[0]["url"] is None  # the string survives as data, not markup
    assert rows[1]["url"] == "https://example.org/method?a=1&b=2"
    for bad in ("javascript:alert(1)", " JAVASCRIPT:alert(1)", "data:text/html,x", "//evil.example/x",
                "https://user:pw@example.org/", "https://example.org/\"onmouseover=x", "http:/x"):
        assert safe_url(bad) is None, bad
    assert safe_url("http://example.org/a?b=1") == "http://example.org/a?b=1"


def test_leaderboard_bad_inputs_are_one_line(bundle_dir, tmp_path):
    (tmp_path / "neither").mkdir()
    one_line_error(cli(leaderboard_cmd, tmp_path / "neither", "--out", tmp_path / "s"),
                   "neither a results bundle", "nor a run folder")
    rewrite(bundle_dir, lambda d: d["results"][1]["metrics"]["psnr"].__setitem__("higher_is_better", "yes"))
    one_line_error(cli(leaderboard_cmd, bundle_dir, "--out", tmp_path / "s"),
                   "schema error at $.results[1].metrics.psnr.higher_is_better")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "index.html").write_text("mine")
    one_line_error(cli(leaderboard_cmd, tmp_path / "neither", "--out", tmp_path / "mine"), "neither")
    assert (tmp_path / "mine" / "index.html").read_text() == "mine"
    assert not (tmp_path / "s").exists()


# --- the browser ------------------------------------------------------------------------------


class Chromium:
    """Headless chromium driven over ``--remote-debugging-pipe``: the browser reads DevTools
    commands on its descriptor 3 and writes replies and events on 4, each a JSON text ended by NUL."""

    def __init__(self, binary: str):
        import fcntl

        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()
        # move the child's ends above 9 first, so placing them at 3 and 4 cannot overwrite each other
        self._ends = (fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10),
                      fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(to_child_r)
        os.close(from_child_w)
        self.profile = tempfile.mkdtemp(prefix="egobench-chromium-")
        args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
                "--window-size=1280,900", "about:blank"]
        ends = self._ends

        def place_ends():  # in the child before exec (close_fds runs after this and keeps 3 and 4)
            os.dup2(ends[0], 3)
            os.dup2(ends[1], 4)

        self.proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=place_ends, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in self._ends:
            os.close(fd)
        self.buf = b""
        self.last_id = 0
        self.session: str | None = None

    def send(self, method: str, params: dict | None = None, *, page: bool = True, timeout: float = 15.0) -> dict:
        self.last_id += 1
        msg = {"id": self.last_id, "method": method, "params": params or {}}
        if page and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_child, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.last_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chromium did not answer {method} in {timeout} s")
            if select.select([self.from_child], [], [], left)[0]:
                chunk = os.read(self.from_child, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buf += chunk

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, page=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 page=False)["sessionId"]
        self.send("Page.navigate", {"url": url})
        self.wait("document.body && document.body.getAttribute('data-ready') === '1'")

    def eval(self, expr: str):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr[:80]}: {r['exceptionDetails'].get('exception', r['exceptionDetails'])}")
        return r["result"].get("value")

    def wait(self, expr: str, timeout: float = 10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.05)
        raise TimeoutError(f"not true after {timeout} s: {expr}")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the centre of the element."""
        x, y = self.eval(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def close(self) -> None:
        try:
            self.send("Browser.close", page=False, timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_child)
        os.close(self.from_child)
        shutil.rmtree(self.profile, ignore_errors=True)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _num(text: str) -> float:
    return math.inf if text == "inf" else float(text)


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (apt-get install chromium); "
                    "the leaderboard's browser test needs a real browser")
def test_site_in_headless_chromium(runs, bundle_dir, tmp_path):
    make_hostile(bundle_dir)
    site = tmp_path / "site"
    write_site([str(bundle_dir)], site, protocols=(str(runs["protocol"]),))
    doc = json.loads((bundle_dir / "results.json").read_text())
    browser = Chromium(chromium_binary())
    try:
        browser.open((site / "index.html").resolve().as_uri())
        t = "#board-t1"
        # hostile strings are text: nothing ran, no element was injected, no javascript: link
        assert browser.eval("window.__pwned === undefined && document.scripts.length === 2")
        assert browser.eval("document.querySelectorAll('img[src=\"x\"], a[href^=\"javascript\"]').length") == 0
        assert browser.eval(f"document.querySelector('{t} tr[data-row=\"r1\"] .label').textContent") == NASTY
        assert browser.eval(f"document.querySelector('{t} tr[data-row=\"r2\"] a.url').href") == \
            "https://example.org/method?a=1&b=2"
        assert browser.eval("[...document.querySelectorAll('#f-verb option')].some(o => o.value === "
                            + json.dumps(NASTY_VERB) + ")")

        def column(key: str) -> list[tuple[str, str]]:
            return browser.eval(f"[...document.querySelectorAll('{t} tbody tr')].map(r => [r.dataset.row, "
                                f"r.querySelector('td[data-col=\"{key}\"] .v').textContent])")

        # sort by PSNR (higher is better: best first), then again (reversed)
        browser.click(f"{t} th[data-col=\"psnr\"] button")
        assert browser.eval(f"document.querySelector('{t} th[data-col=\"psnr\"]').getAttribute('aria-sort')") == \
            "descending"
        down = column("psnr")
        assert down[0] == ["r2", "inf"] and [_num(v) for _, v in down] == sorted((_num(v) for _, v in down),
                                                                                reverse=True)
        browser.click(f"{t} th[data-col=\"psnr\"] button")
        assert [r for r, _ in column("psnr")] == [r for r, _ in reversed(down)]
        # filter by a verb: values and n over that verb's samples only (input-copy's row r1)
        verb = doc["results"][0]["samples"][0]["verb"]
        picked = [s for s in doc["results"][0]["samples"] if s.get("verb") == verb]
        assert 0 < len(picked) < 6
        browser.eval(f"(() => {{ const s = document.getElementById('f-verb'); s.value = {json.dumps(verb)}; "
                     "s.dispatchEvent(new Event('change')); })()")
        lpips = sum(s["values"]["lpips"] for s in picked) / len(picked) * 100
        cells = dict(column("lpips"))
        assert _num(cells["r1"]) == pytest.approx(lpips, abs=0.006)
        assert browser.eval(f"document.querySelector('{t} tr[data-row=\"r1\"] td.n').textContent") == str(len(picked))
        if len(picked) >= 2:
            assert browser.eval(f"document.querySelector('{t} tr[data-row=\"r1\"] td[data-col=\"lpips\"] .ci')")
        shown = browser.eval("[...document.querySelectorAll('#gallery-0 tr.sample')].map(r => r.dataset.sample)")
        assert sorted(shown) == sorted(s["sample_id"] for s in picked)
        # and a noun on top: both filters hold
        noun = picked[-1]["noun"]
        both = [x for x in picked if x.get("noun") == noun]
        browser.eval(f"(() => {{ const s = document.getElementById('f-noun'); s.value = {json.dumps(noun)}; "
                     "s.dispatchEvent(new Event('change')); })()")
        assert browser.eval(f"document.querySelector('{t} tr[data-row=\"r1\"] td.n').textContent") == str(len(both))
        assert browser.eval("document.querySelectorAll('#gallery-0 tr.sample').length") == len(both)
        browser.eval("(() => { const s = document.getElementById('f-noun'); s.value = ''; "
                     "s.dispatchEvent(new Event('change')); })()")
        # open a gallery item: the lightbox shows that sample's image from that method
        browser.click("#gallery-0 tr.sample button.thumb")
        assert browser.wait("!document.getElementById('lightbox').hidden")
        assert browser.eval("document.getElementById('lightbox').dataset.sample") == shown[0]
        assert browser.wait("(() => { const i = document.getElementById('lb-img'); "
                            "return i.complete && i.naturalWidth > 0; })()")
        caption = browser.eval("document.getElementById('lb-caption').textContent")
        assert shown[0] in caption
        browser.click("#lb-close")
        assert browser.wait("document.getElementById('lightbox').hidden")
        assert browser.eval("window.__pwned === undefined")
    finally:
        browser.close()
