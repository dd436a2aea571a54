"""Crowd study hardening (issue 13, items 2 and 10): blind images, hostile results files,
CSV formula cells, linear import, and all-or-nothing export/import outputs."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageCms, PngImagePlugin

from egobench import userstudy
from egobench.errors import DataError, UserError
from egobench.userstudy import Judgment, analyze, export_amt, import_amt, read_results
from tests.conftest import assert_one_line
from tests.test_userstudy import METHODS, _synthetic_key, results_csv

REPO = Path(__file__).resolve().parents[1]


def _export(runs, out, **kw):
    kw.setdefault("n", 4)
    kw.setdefault("seed", 3)
    return export_amt("demo", [runs[m] for m in METHODS], out, **kw)


# ---------------------------------------------------------------------------
# Item 2: every image of an item looks the same on the wire
# ---------------------------------------------------------------------------
def _resized_run(src: Path, dst: Path, size: tuple[int, int], fmt: str, metadata: bool, method: str) -> Path:
    """A copy of run ``src`` whose generated images are ``size`` pixels in ``fmt``, optionally
    carrying an ICC profile, EXIF and a text chunk naming the method."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("images"))
    (dst / "images").mkdir()
    df = pd.read_parquet(dst / "samples.parquet")
    outs = []
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for sid, o in zip(df["sample_id"], df["output"]):
        img = Image.open(src / o).convert("RGB").resize(size, Image.Resampling.BICUBIC)
        name = f"images/{sid}.{fmt}"
        kw = {}
        if metadata:
            exif = Image.Exif()
            exif[0x0131] = f"made-by-{method}"  # Software
            kw = {"icc_profile": icc, "exif": exif, "dpi": (300, 300)}
            if fmt == "png":
                info = PngImagePlugin.PngInfo()
                info.add_text("Comment", f"method={method}")
                kw["pnginfo"] = info
        img.save(dst / name, format="PNG" if fmt == "png" else "JPEG", **kw)
        outs.append(name)
    df["output"] = outs
    df.to_parquet(dst / "samples.parquet", index=False)
    m = json.loads((dst / "metrics.json").read_text())
    m["method"] = method
    (dst / "metrics.json").write_text(json.dumps(m))
    return dst


def _png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, out = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        out.append(data[pos + 4:pos + 8].decode("ascii"))
        pos += 12 + length
    return out


def test_every_image_of_an_item_has_one_size_format_mode_and_no_metadata(runs, tmp_path):
    big = _resized_run(runs["oracle"], tmp_path / "big", (512, 512), "png", True, "bigmethod")
    small = _resized_run(runs["oracle"], tmp_path / "small", (200, 150), "jpg", True, "smallmethod")
    res = export_amt("demo", [big, small], tmp_path / "ex", n=6, seed=1, attention_checks=2)
    key = json.loads(res.key_json.read_text())
    images = tmp_path / "ex" / "upload" / "images"
    by_method: dict[str, list[int]] = {"bigmethod": [], "smallmethod": [], "ground-truth": [], "distractor": []}
    kinds = set()
    for item in key["items"].values():
        kinds.add(item["kind"])
        names = [item["input_image"]] + [s["image"] for s in item["slots"].values()]
        sizes = set()
        for name in names:
            data = (images / name).read_bytes()
            with Image.open(io.BytesIO(data)) as im:
                assert im.format == "PNG" and im.mode == "RGB", (name, im.format, im.mode)
                sizes.add(im.size)
                assert not im.info, (name, sorted(im.info))  # no icc_profile, exif, dpi, text, gamma
            assert set(_png_chunks(data)) == {"IHDR", "IDAT", "IEND"}, _png_chunks(data)
            assert b"bigmethod" not in data and b"smallmethod" not in data
        # input frame, both methods and (attention checks) real frames: one size, the input frame's
        assert sizes == {tuple(item["image_size"])} == {(341, 256)}, sizes
        for s in item["slots"].values():
            by_method[s["method"]].append((images / s["image"]).stat().st_size)
    assert kinds == {"study", "attention"}
    # same encoder settings: the file sizes of the two methods lie in one range (pixel counts
    # 512x512 vs 200x150 made them differ ~9x before); real frames of attention checks alike
    lo = min(min(v) for v in by_method.values())
    hi = max(max(v) for v in by_method.values())
    assert hi / lo < 2.0, by_method
    med = {m: float(np.median(v)) for m, v in by_method.items()}
    assert max(med.values()) / min(med.values()) < 1.5, med
    readme = (tmp_path / "ex" / "README.txt").read_text()
    assert "LANCZOS" in readme and "same" in readme
    assert key["study"]["images"]["resample"] == "LANCZOS"


def test_description_study_images_share_one_size(runs, tmp_path):
    big = _resized_run(runs["oracle"], tmp_path / "big", (512, 512), "png", True, "bigmethod")
    # target frames of another size than the input frames (e.g. a differently prepared split)
    df = pd.read_parquet(big / "samples.parquet")
    (big / "targets").mkdir()
    paths = []
    for sid, t in zip(df["sample_id"], df["target_path"]):
        Image.open(t).convert("RGB").resize((400, 300)).save(big / "targets" / f"{sid}.png")
        paths.append(str(big / "targets" / f"{sid}.png"))
    df["target_path"] = paths
    df.to_parquet(big / "samples.parquet", index=False)
    res = export_amt("demo", [big], tmp_path / "ex", n=3, seed=1, study="description", attention_checks=1)
    rows = list(csv.DictReader(open(res.batch_csv, newline="")))
    for r in rows:
        sizes = {Image.open(tmp_path / "ex" / "upload" / r[c]).size for c in ("input_image_url", "target_image_url")}
        assert len(sizes) == 1


def test_common_size_caps_the_long_side():
    assert userstudy.common_size(341, 256) == (341, 256)
    assert userstudy.common_size(4000, 3000) == (1024, 768)
    assert userstudy.common_size(1080, 1920) == (576, 1024)


# ---------------------------------------------------------------------------
# Item 10: hostile results files, CSV formula cells, linear time
# ---------------------------------------------------------------------------

@pytest.fixture
def batch(runs, tmp_path):
    res = _export(runs, tmp_path / "ex", n=3)
    key = json.loads(res.key_json.read_text())
    ans = {(w, it): "candidate_1" for w in ("A", "B") for it in key["items"]}
    return res, key, results_csv(res.batch_csv, ans)


def _task_answers_csv(batch_csv: Path, key: dict, value: str) -> str:
    item = next(iter(key["items"]))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["HITId", "WorkerId", "AssignmentId", "AssignmentStatus", "Input.item_id", "Answer.taskAnswers"])
    w.writerow(["H1", "W1", "A1", "Submitted", item, '[{"choice": {"candidate_1": true}}]'])
    w.writerow(["H1", "W2", "A2", "Submitted", item, value])
    return buf.getvalue()


def test_deep_task_answers_json_is_one_line(batch, tmp_path):
    res, key, _ = batch
    deep = "[" * 50_000 + "]" * 50_000
    p = tmp_path / "deep.csv"
    p.write_text(_task_answers_csv(res.batch_csv, key, deep))
    with pytest.raises(DataError) as e:
        read_results(p, key)
    assert_one_line(str(e.value), str(p), "line 3", "Answer.taskAnswers", "nested deeper")
    # a duplicate key would silently keep the last answer
    p.write_text(_task_answers_csv(res.batch_csv, key, '[{"choice": {"candidate_1": true}, "choice": "candidate_2"}]'))
    with pytest.raises(DataError) as e:
        read_results(p, key)
    assert_one_line(str(e.value), str(p), "line 3", "Answer.taskAnswers", "duplicate key")
    # and a working one still parses
    p.write_text(_task_answers_csv(res.batch_csv, key, '[{"choice": "2"}]'))
    assert [j.answer for j in read_results(p, key)[0]] == ["candidate_1", "candidate_2"]


def test_deep_task_answers_through_the_cli_has_no_traceback(batch, tmp_path):
    from click.testing import CliRunner

    from egobench.cli import main

    res, key, _ = batch
    p = tmp_path / "deep.csv"
    p.write_text(_task_answers_csv(res.batch_csv, key, "[" * 50_000 + "]" * 50_000))
    r = CliRunner().invoke(main, ["import-amt", "--results", str(p), "--key", str(res.key_json),
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and "RecursionError" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and "line 3" in r.output
    assert not (tmp_path / "o").exists()


def test_hostile_results_files_each_one_line(batch, tmp_path):
    res, key, good = batch
    lines = good.split("\r\n")
    recs = list(csv.reader(io.StringIO(good)))
    a_col = recs[0].index("AssignmentId")
    recs[3][a_col] = recs[2][a_col]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(recs)
    cases = {
        "latin1": (("\r\n".join(lines[:3]) + "\r\n").encode() + "W\xe9rker,caf\xe9\r\n".encode("latin-1"),
                   ["line 4", "not UTF-8", "re-save"]),
        "dup-assignment": (buf.getvalue().encode(), ["line 4", "AssignmentId", "also on line 3"]),
        "missing-columns": (good.replace("Input.item_id", "Input.other", 1).encode(),
                            ["line 1", "missing column", "Input.item_id"]),
        "unknown-item": (good.replace(next(iter(key["items"])), "f" * 16, 1).encode(),
                         ["line 2", "Input.item_id", "ffffffffffffffff", "not in the key"]),
        "huge-item": (good.replace(next(iter(key["items"])), "x" * 100_000, 1).encode(), ["line 2", "chars)"]),
        "empty-worker": (good.replace(",A,", ",,", 1).encode(), ["WorkerId", "empty"]),
    }
    for name, (data, parts) in cases.items():
        p = tmp_path / f"{name}.csv"
        p.write_bytes(data)
        with pytest.raises(DataError) as e:
            read_results(p, key)
            pytest.fail(f"{name}: accepted")
        assert_one_line(str(e.value), str(p), *parts)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DataError) as e:
        read_results(tmp_path / "folder.csv", key)
    assert_one_line(str(e.value), "is a folder")


def test_hostile_key_files_each_one_line(batch, tmp_path):
    res, key, good = batch
    (tmp_path / "r.csv").write_text(good)
    bad_keys = {
        "list": [],
        "no-type": {"study": {}, "items": {}},
        "bad-kind": {**key, "items": {k: {**v, "kind": "x"} for k, v in key["items"].items()}},
        "bad-slots": {**key, "items": {k: {**v, "slots": {}} for k, v in key["items"].items()}},
    }
    for name, k in bad_keys.items():
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(k))
        with pytest.raises(DataError) as e:
            import_amt(tmp_path / "r.csv", p)
            pytest.fail(f"{name}: accepted")
        assert_one_line(str(e.value), str(p), "not an egobench study key")


FORMULAS = ['=HYPERLINK("http://evil.example","x")', "@SUM(1+1)", "+1+1", "-2+3", "\tTAB", "\rCR"]


def test_csv_cells_are_neutralised_everywhere(runs, tmp_path):
    a = shutil.copytree(runs["input-copy"], tmp_path / "r1")
    b = shutil.copytree(runs["oracle"], tmp_path / "r2")
    for d, method in ((a, "=cmd|' /C calc'!A0"), (b, "+oracle")):
        m = json.loads((d / "metrics.json").read_text())
        m["method"] = method
        (d / "metrics.json").write_text(json.dumps(m))
        df = pd.read_parquet(d / "samples.parquet")
        df["action"] = "=1+2 take cup"
        df.to_parquet(d / "samples.parquet", index=False)
    res = export_amt("demo", [a, b], tmp_path / "ex", n=3, seed=0)
    rows = list(csv.reader(open(res.batch_csv, newline="")))
    col = rows[0].index("action")
    assert all(r[col] == "'=1+2 take cup" for r in rows[1:])
    # the preview shows what the requester site will show: the cell as written
    assert "&#39;=1+2 take cup" in res.preview_html.read_text()
    key = json.loads(res.key_json.read_text())
    workers = FORMULAS[: len(FORMULAS)]
    ans = {(w, it): "candidate_1" for w in workers for it in key["items"]}
    (tmp_path / "r.csv").write_text(results_csv(res.batch_csv, ans))
    study, out = import_amt(tmp_path / "r.csv", res.key_json, tmp_path / "us")
    for name in ("raters.csv", "userstudy.csv"):
        with open(out / name, newline="") as f:
            cells = [c for row in csv.reader(f) for c in row]
        assert cells, name
        for c in cells:
            assert not c.startswith(("=", "+", "-", "@", "\t", "\r")), (name, c)
    raters = list(csv.DictReader(open(out / "raters.csv", newline="")))
    # worker ids are stripped by the reader; a tab/CR-led id arrives without it
    assert {r["worker"] for r in raters} >= {"'" + w for w in FORMULAS[:4]}
    methods = {r["method"] for r in csv.DictReader(open(out / "userstudy.csv", newline=""))}
    assert methods == {"'=cmd|' /C calc'!A0", "'+oracle"}
    # the JSON keeps the exact strings (it is not a spreadsheet format)
    assert {r["worker"] for r in json.loads((out / "userstudy.json").read_text())["raters"]} >= set(FORMULAS[:4])


class _CountingStr(str):
    """An answer string that counts how often it is hashed or compared."""

    ops = 0

    def __hash__(self):
        _CountingStr.ops += 1
        return str.__hash__(self)

    def __eq__(self, other):
        _CountingStr.ops += 1
        return str.__eq__(self, other)

    __ne__ = str.__ne__


def _analyze_ops(n: int) -> int:
    key = _synthetic_key(2, 3)
    rng = np.random.default_rng(0)
    js = [Judgment(f"it{i % 2}", f"w{i}", _CountingStr(f"candidate_{int(rng.integers(3)) + 1}"), i + 2)
          for i in range(n)]
    _CountingStr.ops = 0
    analyze(js, key, n_boot=20)
    return _CountingStr.ops


def test_analyze_is_linear_in_judgments_per_item():
    # 300k judgments on 4 items did not finish in 7 minutes: each rater's leave-one-out majority
    # copied and recounted its item's whole answer list. Count answer hashes/comparisons instead
    # of timing: linear work grows 4x for 4x the judgments, the old code 16x.
    small, large = _analyze_ops(500), _analyze_ops(2000)
    assert large / small < 5.0, (small, large)
    assert large < 20 * 2000, large


# ---------------------------------------------------------------------------
# Also cover: a crash or kill -9 leaves nothing half-written; the rerun is identical
# ---------------------------------------------------------------------------
def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "key.json":
                k = json.loads(data)
                k["study"].pop("created")
                data = json.dumps(k, sort_keys=True).encode()
            out[str(p.relative_to(root))] = data
    return out


def _leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}.") or "tmp-egobench" in p.name)


class _Crash(Exception):
    pass


def _crash_after(monkeypatch, k: int) -> list[int]:
    """Make the k-th file write of userstudy (0-based) raise; return the call counter.
    Only outermost calls count (atomic_write_json calls atomic_write_text, ...)."""
    calls, depth = [0], [0]

    def wrap(fn):
        def inner(*a, **kw):
            if depth[0] == 0:
                if calls[0] == k:
                    raise _Crash(f"injected at write {k}")
                calls[0] += 1
            depth[0] += 1
            try:
                return fn(*a, **kw)
            finally:
                depth[0] -= 1
        return inner

    import egobench.io as eio

    for name in ("atomic_write_bytes", "atomic_write_text", "atomic_write_json"):
        fn = getattr(eio, name)  # patched where defined and where imported by name
        monkeypatch.setattr(eio, name, wrap(fn))
        monkeypatch.setattr(userstudy, name, wrap(fn), raising=False)
    return calls


def test_export_crash_at_any_write_leaves_nothing_and_rerun_is_identical(runs, tmp_path, monkeypatch):
    ref = _export(runs, tmp_path / "ref", attention_checks=1)
    n_writes = len(_tree(tmp_path / "ref"))
    want = _tree(ref.out)
    parent = tmp_path / "p"
    parent.mkdir()
    points = sorted({0, 1, n_writes // 2, n_writes - 3, n_writes - 2, n_writes - 1})
    for k in points:
        with monkeypatch.context() as m:
            _crash_after(m, k)
            with pytest.raises(_Crash):
                _export(runs, parent / "ex", attention_checks=1)
        assert not (parent / "ex").exists(), k
        assert _leftovers(parent, "ex") == [], k
    # a crash at the final rename itself
    with monkeypatch.context() as m:
        real = os.rename

        def boom(src, dst):
            if Path(dst) == parent / "ex":
                raise _Crash("at rename")
            return real(src, dst)

        m.setattr(os, "rename", boom)
        with pytest.raises(_Crash):
            _export(runs, parent / "ex", attention_checks=1)
    assert not (parent / "ex").exists() and _leftovers(parent, "ex") == []
    res = _export(runs, parent / "ex", attention_checks=1)
    assert _tree(res.out) == want


_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from egobench import userstudy
    target, mode = int(sys.argv[1]), sys.argv[2]
    calls, depth = [0], [0]
    def wrap(fn):  # counts outermost writes only
        def inner(*a, **kw):
            if depth[0] == 0:
                if calls[0] == target:
                    os.kill(os.getpid(), signal.SIGKILL)
                calls[0] += 1
            depth[0] += 1
            try:
                return fn(*a, **kw)
            finally:
                depth[0] -= 1
        return inner
    import egobench.io as eio
    for name in ("atomic_write_bytes", "atomic_write_text", "atomic_write_json"):
        fn = getattr(eio, name)
        setattr(eio, name, wrap(fn))
        setattr(userstudy, name, wrap(fn))
    args = sys.argv[3:]
    if mode == "export":
        userstudy.export_amt("demo", args[:-1], args[-1], n=4, seed=3, attention_checks=1)
    else:
        userstudy.import_amt(args[0], args[1], args[2], seed=1)
    print("finished")
""")


def _killed(target: int, mode: str, *args) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, str(target), mode, *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr[-2000:])


def test_export_killed_with_sigkill_leaves_no_folder_and_rerun_is_identical(runs, tmp_path):
    ref = _export(runs, tmp_path / "ref", attention_checks=1)
    parent = tmp_path / "p"
    parent.mkdir()
    for k in (3, len(_tree(ref.out)) - 1):  # among the images; at the last file (README)
        _killed(k, "export", *[runs[m] for m in METHODS], parent / "ex")
        assert not (parent / "ex").exists(), k
        assert all(n.startswith(".ex.egobench-partial-") for n in _leftovers(parent, "ex"))
    res = _export(runs, parent / "ex", attention_checks=1)
    assert _tree(res.out) == _tree(ref.out)
    assert _leftovers(parent, "ex") == []


def _two_results(runs, tmp_path):
    res = _export(runs, tmp_path / "ex", attention_checks=1)
    key = json.loads(res.key_json.read_text())
    rng = np.random.default_rng(0)
    out = []
    for pref in ("oracle", "input-copy"):
        ans = {}
        for it, k in key["items"].items():
            for w in ("W0", "W1", "W2"):
                if k["kind"] == "attention":
                    ans[(w, it)] = k["expected"]
                else:
                    slots = list(k["slots"])
                    best = next(s for s in slots if k["slots"][s]["method"] == pref)
                    ans[(w, it)] = best if rng.random() < 0.8 else slots[int(rng.integers(len(slots)))]
        p = tmp_path / f"results-{pref}.csv"
        p.write_text(results_csv(res.batch_csv, ans))
        out.append(p)
    return res, out


def test_import_crash_keeps_the_previous_result_whole_and_rerun_is_identical(runs, tmp_path, monkeypatch):
    res, (r_old, r_new) = _two_results(runs, tmp_path)
    import_amt(r_new, res.key_json, tmp_path / "ref", seed=1)
    want_new = _tree(tmp_path / "ref")
    out = tmp_path / "p" / "us"
    import_amt(r_old, res.key_json, out, seed=1)
    want_old = _tree(out)
    assert want_old != want_new
    for k in range(4):
        with monkeypatch.context() as m:
            _crash_after(m, k)
            with pytest.raises(_Crash):
                import_amt(r_new, res.key_json, out, seed=1)
        assert _tree(out) == want_old, k
        assert _leftovers(out.parent, "us") == []
    # a crash between moving the old result aside and moving the new one in
    with monkeypatch.context() as m:
        real = os.rename

        def boom(src, dst):
            if Path(dst) == out and "partial" in Path(src).name:
                raise _Crash("between renames")
            return real(src, dst)

        m.setattr(os, "rename", boom)
        with pytest.raises(_Crash):
            import_amt(r_new, res.key_json, out, seed=1)
    assert _tree(out) == want_old  # put back
    import_amt(r_new, res.key_json, out, seed=1)
    assert _tree(out) == want_new
    assert _leftovers(out.parent, "us") == []


def test_import_killed_with_sigkill_then_rerun_is_identical(runs, tmp_path):
    res, (r_old, r_new) = _two_results(runs, tmp_path)
    import_amt(r_new, res.key_json, tmp_path / "ref", seed=1)
    out = tmp_path / "p" / "us"
    import_amt(r_old, res.key_json, out, seed=1)
    want_old = _tree(out)
    _killed(2, "import", r_new, res.key_json, out)
    assert _tree(out) == want_old
    assert all(n.startswith(".us.egobench-partial-") for n in _leftovers(out.parent, "us"))
    import_amt(r_new, res.key_json, out, seed=1)
    assert _tree(out) == _tree(tmp_path / "ref")
    assert _leftovers(out.parent, "us") == []


# ---------------------------------------------------------------------------
# Same classes elsewhere: paths and URLs from user strings, output folders
# ---------------------------------------------------------------------------
def test_run_output_leaving_the_run_folder_is_refused(runs, tmp_path):
    for case in ("dotdot", "symlink"):
        a = shutil.copytree(runs["input-copy"], tmp_path / case)
        df = pd.read_parquet(a / "samples.parquet")
        if case == "dotdot":
            df.loc[0, "output"] = "images/../../../../../../../../etc/hostname"
        else:
            (a / "images" / "link.png").symlink_to("/etc/hostname")
            df.loc[0, "output"] = "images/link.png"
        df.to_parquet(a / "samples.parquet", index=False)
        with pytest.raises(DataError) as e:
            export_amt("demo", [a, runs["oracle"]], tmp_path / f"ex-{case}", n=8, seed=0)
        assert_one_line(str(e.value), "samples.parquet", "leaves the run folder")
        assert not (tmp_path / f"ex-{case}").exists()


def test_export_refuses_bad_base_url_and_non_empty_out(runs, tmp_path):
    for url in ('javascript:alert(1)//', 'https://x.org/" onerror="alert(1)', "ftp://x"):
        with pytest.raises(UserError) as e:
            _export(runs, tmp_path / "a", image_base_url=url)
        assert_one_line(str(e.value), "--image-base-url")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(UserError) as e:
        _export(runs, tmp_path / "b")
    assert_one_line(str(e.value), "not empty")
    assert (tmp_path / "b" / "notes.txt").read_text() == "mine"
    (tmp_path / "c").mkdir()  # an empty folder is fine
    assert _export(runs, tmp_path / "c").batch_csv.is_file()


def test_import_refuses_an_out_folder_holding_other_files(batch, tmp_path):
    res, key, good = batch
    (tmp_path / "r.csv").write_text(good)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "thesis.tex").write_text("mine")
    with pytest.raises(UserError) as e:
        import_amt(tmp_path / "r.csv", res.key_json, tmp_path / "o")
    assert_one_line(str(e.value), "did not write")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["thesis.tex"]


def test_summary_escapes_control_characters_in_worker_ids_and_labels():
    from egobench.userstudy import format_summary

    key = _synthetic_key(2, 2)
    key["study"]["runs"][0]["label"] = "m0\x1b[2J"
    for it in key["items"].values():
        for slot in it["slots"].values():
            slot["method"] = "m0\x1b[2J" if slot["method"] == "m0" else slot["method"]
    key["items"]["att"] = {"kind": "attention", "expected": "candidate_1",
                           "slots": {"candidate_1": {"method": "ground-truth"}, "candidate_2": {"method": "distractor"}}}
    evil = "W\x1b]0;pwned\x07\nfake line" + "x" * 500
    js = [Judgment("it0", evil, "candidate_1", 2), Judgment("att", evil, "candidate_2", 3),
          Judgment("it0", "ok", "candidate_1", 4), Judgment("it1", "ok", "candidate_2", 5)]
    text = format_summary(analyze(js, key, n_boot=10))
    assert "\x1b" not in text and "\x07" not in text
    assert len(text.splitlines()) == 5 and max(len(line) for line in text.splitlines()) < 200, text


def test_study_runs_are_read_by_the_run_folder_reader(tmp_path):
    """export-amt reads a run through read_run_folder, then checks what a study needs: each failure is one
    line naming the file (no samples, no method string, damaged or incomplete table, a sample twice)."""
    from egobench.userstudy import _RUN_COLUMNS, _load_run

    def folder(name, metrics=None, rows=None):
        d = tmp_path / name
        d.mkdir()
        m = {"method": "m", "dataset": "demo", "metrics": {}, "split_fingerprint": "fp"} if metrics is None else metrics
        (d / "metrics.json").write_text(json.dumps(m))
        if rows is not False:
            rows = rows or [{c: f"{c}{i}" for c in _RUN_COLUMNS} for i in range(2)]
            pd.DataFrame(rows).to_parquet(d / "samples.parquet", index=False)
        return d

    run = _load_run(folder("ok"))
    assert (run.method, run.dataset, run.fingerprint) == ("m", "demo", "fp")
    assert list(run.samples.index) == ["sample_id0", "sample_id1"]
    with pytest.raises(UserError) as e:
        _load_run(folder("no-samples", rows=False))
    assert_one_line(str(e.value), "no-samples", "needs metrics.json and samples.parquet")
    with pytest.raises(DataError) as e:
        _load_run(folder("no-method", metrics={"method": "", "dataset": "demo", "metrics": {}}))
    assert_one_line(str(e.value), "metrics.json", "no 'method' string")
    with pytest.raises(DataError) as e:
        _load_run(folder("no-description"), study="description")
    assert_one_line(str(e.value), "samples.parquet", "missing column(s) description")
    twice = [{c: f"{c}0" for c in _RUN_COLUMNS}] * 2
    with pytest.raises(DataError) as e:
        _load_run(folder("twice", rows=twice))
    assert_one_line(str(e.value), "samples.parquet", "appears twice")
    damaged = folder("damaged")
    (damaged / "samples.parquet").write_bytes(b"PAR1 damaged")
    with pytest.raises(DataError) as e:
        _load_run(damaged)
    assert_one_line(str(e.value), "samples.parquet: cannot read")
