"""`egobench demo`: the README's first command, end to end on the demo split."""

from __future__ import annotations

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
    assert "egobench-v1" in text
    # input | output | target for every demo sample, all present on disk
    from egobench.data import load_split

    assert len(p.imgs) == 3 * len(load_split("demo"))
    for src in p.imgs:
        assert (page.parent / src).is_file(), src
    # the second demo regenerates nothing
    r2 = CliRunner().invoke(main, ["demo", "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert r2.exit_code == 0
