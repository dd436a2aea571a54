"""Run directories: nothing replaced, nothing escapes, nothing surprising on the daily path.

Issue 13 items 1 (a command replacing another's run), 4 (path escape through a
name), 9 (disk full), the "also cover" list for run directories and outside
folders; issue 14 items 1 (--limit), 2 (stored output paths), 7 (--device,
--debug), 10 (what an evaluated folder holds), 13 (Ctrl-C), --seed/--seeds and
the layout command. Every run here scores PSNR only (a protocol file written by
the test) so the tests take seconds.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from egobench.cli import main
from tests.conftest import SMALL_PROTOCOL, one_line_error

PSNR_ONLY = SMALL_PROTOCOL.format(name="psnr-only") + "  - name: psnr\n    metric: psnr\n"


@pytest.fixture
def proto(tmp_path: Path) -> str:
    p = tmp_path / "psnr-only.yaml"
    p.write_text(PSNR_ONLY)
    return str(p)


def invoke(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], **kw)


def run_demo(proto: str, runs: Path, *extra) -> Path:
    r = invoke("run", "-m", "input-copy", "-d", "demo", "-p", proto, "--runs-dir", runs, "--quiet", *extra)
    assert r.exit_code == 0, r.output
    line = [ln for ln in r.output.splitlines() if ln.startswith("run directory: ")][-1]
    return Path(line[len("run directory: "):])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "logs" not in p.parts}


# ---------------------------------------------------------------------------
# issue 13 item 1: a command never replaces another command's run
# ---------------------------------------------------------------------------
def test_evaluate_out_refuses_a_finished_run(tmp_path, proto):
    run_dir = run_demo(proto, tmp_path / "runs", "--limit", "4")
    before = snapshot(run_dir)
    r = invoke("evaluate", "--images", run_dir / "images", "-d", "demo", "-p", proto, "--limit", "4",
               "--out", run_dir, "--quiet")
    one_line_error(r, str(run_dir), "holds a run of 'input-copy'", "choose another --out")
    assert snapshot(run_dir) == before
    # and the original run still resumes (nothing to redo)
    again = run_demo(proto, tmp_path / "runs", "--limit", "4")
    assert again == run_dir


def test_run_out_refuses_an_evaluation_and_a_foreign_folder(tmp_path, proto):
    run_dir = run_demo(proto, tmp_path / "runs", "--limit", "3")
    ev = tmp_path / "ev"
    r = invoke("evaluate", "--images", run_dir / "images", "-d", "demo", "-p", proto, "--limit", "3",
               "--out", ev, "--quiet")
    assert r.exit_code == 0, r.output
    before = snapshot(ev)
    r = invoke("run", "-m", "oracle", "-d", "demo", "-p", proto, "--limit", "3", "--out", ev, "--quiet")
    one_line_error(r, str(ev), "different identity")
    assert snapshot(ev) == before
    # a folder that is not a run directory (here: someone's images) is never written into
    mine = tmp_path / "my-photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"not really")
    r = invoke("run", "-m", "input-copy", "-d", "demo", "-p", proto, "--limit", "2", "--out", mine, "--quiet")
    one_line_error(r, "not an egobench run directory", "holiday.jpg")
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.jpg"]


def test_evaluate_out_inside_the_images_folder_is_refused(tmp_path, proto):
    run_dir = run_demo(proto, tmp_path / "runs", "--limit", "2")
    imgs = tmp_path / "imgs"
    shutil.copytree(run_dir / "images", imgs)
    r = invoke("evaluate", "--images", imgs, "-d", "demo", "-p", proto, "--limit", "2", "--out", imgs / "res")
    one_line_error(r, "inside the images folder")
    assert not (imgs / "res").exists()


# ---------------------------------------------------------------------------
# issue 14 item 1: --limit never shares the full run's directory
# ---------------------------------------------------------------------------
def test_limited_run_gets_its_own_directory(tmp_path, proto):
    full = run_demo(proto, tmp_path / "runs")
    n_full = json.loads((full / "metrics.json").read_text())["n_samples"]
    limited = run_demo(proto, tmp_path / "runs", "--limit", "3")
    assert limited != full
    assert json.loads((full / "metrics.json").read_text())["n_samples"] == n_full == 28
    assert json.loads((limited / "metrics.json").read_text())["n_samples"] == 3
    sel = json.loads((limited / "manifest.json").read_text())["split"]["selection"]
    assert sel["limit"] == 3 and sel["n_samples"] == 3
    assert "selection" not in json.loads((full / "manifest.json").read_text())["split"]
    # a second limited run of another size is a third directory
    assert run_demo(proto, tmp_path / "runs", "--limit", "2") not in (full, limited)


# ---------------------------------------------------------------------------
# issue 13 item 4: no name becomes a path outside --runs-dir
# ---------------------------------------------------------------------------
HOSTILE = ["x/../../../../escaped", "../up", "/abs/olute", "..", ".hidden", "a\\b", "-rf", "name\x00nul",
           "ok name with spaces", "é/ü"]


@pytest.mark.parametrize("name", HOSTILE)
def test_evaluate_name_never_escapes_runs_dir(tmp_path, proto, name):
    run_dir = run_demo(proto, tmp_path / "runs", "--limit", "2")
    runs = tmp_path / "runs2"
    r = invoke("evaluate", "--images", run_dir / "images", "-d", "demo", "-p", proto, "--limit", "2",
               "--name", name, "--runs-dir", runs, "--quiet")
    assert r.exit_code == 0, r.output
    out = [ln for ln in r.output.splitlines() if ln.startswith("run directory: ")][-1][len("run directory: "):]
    real = os.path.realpath(out)
    assert real.startswith(os.path.realpath(runs) + os.sep), out
    # exactly <runs>/<dataset>/<protocol>/<method>/<id>: the name stayed one path component
    assert len(Path(real).relative_to(os.path.realpath(runs)).parts) == 4
    assert not any("escaped" in p.name for p in tmp_path.iterdir())


def test_every_path_part_option_is_sanitised(tmp_path, proto):
    """Walk the CLI: every option of run/evaluate that names a path *part* (not a whole path the user
    chose, like --out) goes through the sanitiser. A hostile protocol *name* inside a YAML file too."""
    from egobench.cli import main as group

    path_parts = {"run": {"method"}, "evaluate": {"name"}}
    whole_paths = {"out", "runs_dir", "data_root", "images", "protocol", "weights"}
    for cmd_name, parts in path_parts.items():
        cmd = group.get_command(None, cmd_name)
        names = {p.name for p in cmd.params}
        # the options that build the default run directory are exactly these plus whole paths
        assert parts <= names
        assert {"dataset"} <= names
        assert whole_paths & names
    evil = tmp_path / "evil.yaml"
    evil.write_text(PSNR_ONLY.replace("name: psnr-only", "name: ../../../evil-protocol"))
    runs = tmp_path / "runs"
    run_dir = run_demo(str(evil), runs, "--limit", "2")
    assert os.path.realpath(run_dir).startswith(os.path.realpath(runs) + os.sep)
    assert not (tmp_path / "evil-protocol").exists()
    # a method given as module:Class with path characters
    r = invoke("run", "-m", "tests.plugins.methods:NoSuchThing/../..", "-d", "demo", "-p", proto, "--runs-dir", runs)
    assert r.exit_code == 2 and "Traceback" not in r.output


# ---------------------------------------------------------------------------
# issue 13 item 9: disk full is one line, and the rerun is identical
# ---------------------------------------------------------------------------
def test_disk_full_is_one_line_and_resume_is_identical(tmp_path, proto, monkeypatch):
    import egobench.io as eio

    real_fsync = os.fsync
    calls = {"n": 0}

    def full_after_three(fd):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(eio.os, "fsync", full_after_three)
    runs = tmp_path / "runs"
    r = invoke("run", "-m", "input-copy", "-d", "demo", "-p", proto, "--runs-dir", runs, "--limit", "6", "--quiet")
    line = one_line_error(r, "no space left on the device", "free", "rerun the same command")
    assert "images" in line and "needs about" in line
    monkeypatch.setattr(eio.os, "fsync", real_fsync)
    run_dir = run_demo(proto, runs, "--limit", "6")
    assert not list(run_dir.rglob(".tmp-egobench-*"))
    clean = run_demo(proto, tmp_path / "clean", "--limit", "6")
    a, b = snapshot(run_dir / "images"), snapshot(clean / "images")
    assert a == b
    pa = pd.read_parquet(run_dir / "samples.parquet")
    pb = pd.read_parquet(clean / "samples.parquet")
    assert pa["psnr"].tolist() == pb["psnr"].tolist()


def test_disk_full_outside_atomic_writes_is_one_line(monkeypatch):
    """An ENOSPC from any other write still ends in one line, not a traceback."""
    def boom(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", "/somewhere/file.bin")

    monkeypatch.setattr("egobench.runner.load_split", boom)
    r = invoke("run", "-m", "input-copy", "-d", "demo")
    one_line_error(r, "/somewhere", "no space left")


# ---------------------------------------------------------------------------
# issue 14 item 2 and 10: an evaluated folder, from any working directory
# ---------------------------------------------------------------------------
def test_evaluate_stores_paths_that_resolve_from_anywhere(tmp_path, proto, monkeypatch):
    run_dir = run_demo(proto, tmp_path / "runs", "--limit", "3")
    work = tmp_path / "work"
    shutil.copytree(run_dir / "images", work / "outs")
    monkeypatch.chdir(work)
    r = invoke("evaluate", "--images", "outs", "-d", "demo", "-p", proto, "--limit", "3", "--runs-dir", "r",
               "--quiet")
    assert r.exit_code == 0, r.output
    ev = Path([ln for ln in r.output.splitlines() if ln.startswith("run directory: ")][-1][15:])
    df = pd.read_parquet(ev / "samples.parquet")
    monkeypatch.chdir(tmp_path)  # somewhere else
    for out in df["output"]:
        assert Path(out).is_absolute() and Path(out).is_file(), out
    # a run's own images resolve from its run directory
    df_run = pd.read_parquet(run_dir / "samples.parquet")
    for out in df_run["output"]:
        assert (run_dir / out).is_file()
    assert {"verb", "noun"} <= set(df_run.columns)


def test_evaluate_reports_what_the_folder_holds(tmp_path, proto):
    from PIL import Image

    run_dir = run_demo(proto, tmp_path / "runs", "--limit", "4")
    imgs = tmp_path / "imgs"
    shutil.copytree(run_dir / "images", imgs)
    files = sorted(imgs.glob("*.png"))
    (imgs / "not-a-sample.png").write_bytes(files[0].read_bytes())  # extra image
    (imgs / "notes.txt").write_text("hello")  # not an image
    Image.open(files[1]).convert("L").save(files[1])  # grayscale
    Image.open(files[2]).resize((17, 13)).save(files[2])  # another size
    outside = tmp_path / "outside.png"
    outside.write_bytes(files[0].read_bytes())
    (imgs / "link.png").symlink_to(outside)  # leaves the folder: not followed
    r = invoke("evaluate", "--images", imgs, "-d", "demo", "-p", proto, "--limit", "4", "--out", tmp_path / "ev")
    assert r.exit_code == 0, r.output
    for needle in ("4 of 4 samples have an image", "1 extra image file", "1 non-image file",
                   "1 symlink(s) leaving the folder", "1 image(s) of another size", "1 grayscale image"):
        assert needle in r.output, (needle, r.output)
    log = (tmp_path / "ev" / "logs" / "evaluate.log").read_text()
    assert "extra: " in log and "not-a-sample.png" in log and "grayscale: " in log
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    assert manifest["images_folder"]["extra"] == 1 and manifest["images_folder"]["grayscale"] == 1


def test_symlink_to_outside_is_not_followed_for_a_sample(tmp_path, proto):
    run_dir = run_demo(proto, tmp_path / "runs", "--limit", "2")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    files = sorted((run_dir / "images").glob("*.png"))
    shutil.copy(files[0], imgs / files[0].name)
    (imgs / files[1].name).symlink_to(files[1])  # the sample's only image is a link out of the folder
    r = invoke("evaluate", "--images", imgs, "-d", "demo", "-p", proto, "--limit", "2", "--out", tmp_path / "ev")
    one_line_error(r, "no image for 1 of 2 samples")


def test_two_files_for_one_sample_is_an_error_naming_both(tmp_path, proto):
    from PIL import Image

    run_dir = run_demo(proto, tmp_path / "runs", "--limit", "2")
    imgs = tmp_path / "imgs"
    shutil.copytree(run_dir / "images", imgs)
    first = sorted(imgs.glob("*.png"))[0]
    Image.open(first).save(first.with_suffix(".jpg"))
    r = invoke("evaluate", "--images", imgs, "-d", "demo", "-p", proto, "--limit", "2", "--out", tmp_path / "ev")
    line = one_line_error(r, "two images for sample", first.name, first.with_suffix(".jpg").name)
    assert "keep one" in line
    assert not (tmp_path / "ev").exists()


def test_concurrent_evaluate_on_one_folder_is_refused(tmp_path, proto):
    from egobench.store import run_lock

    run_dir = run_demo(proto, tmp_path / "runs", "--limit", "2")
    out = tmp_path / "ev"
    with run_lock(out):  # another process holds it
        r = invoke("evaluate", "--images", run_dir / "images", "-d", "demo", "-p", proto, "--limit", "2",
                   "--out", out)
    one_line_error(r, "another egobench process is using this run directory")


# ---------------------------------------------------------------------------
# issue 14 item 7: devices and --debug
# ---------------------------------------------------------------------------
def test_unavailable_device_is_one_line_before_anything_is_written(tmp_path, proto):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    runs = tmp_path / "runs"
    for dev in ("cuda", "cuda:3", "tpu", "nonsense!"):
        r = invoke("run", "-m", "input-copy", "-d", "demo", "-p", proto, "--runs-dir", runs, "--device", dev)
        one_line_error(r, dev)
        assert not runs.exists()


def test_debug_works_after_the_subcommand(tmp_path):
    r = invoke("run", "-m", "input-cpy", "-d", "demo", "--debug")
    assert r.exit_code == 2
    assert "Traceback (most recent call last)" in r.output and "unknown method 'input-cpy'" in r.output
    r = invoke("run", "-m", "input-cpy", "-d", "demo")
    one_line_error(r, "did you mean 'input-copy'")


# ---------------------------------------------------------------------------
# issue 14 item 13: Ctrl-C says what was saved, and the log names it
# ---------------------------------------------------------------------------
def test_ctrl_c_reports_what_was_saved(tmp_path, proto, monkeypatch):
    from egobench.bounds import InputCopy

    real = InputCopy.generate
    calls = {"n": 0}

    def interrupted(self, samples, seeds):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, samples, seeds)

    monkeypatch.setattr(InputCopy, "generate", interrupted)
    runs = tmp_path / "runs"
    r = invoke("run", "-m", "input-copy", "-d", "demo", "-p", proto, "--runs-dir", runs, "--limit", "6",
               "--batch-size", "1", "--quiet")
    assert r.exit_code == 130, r.output
    assert "interrupted: 2 of 6 images are saved under" in r.output and "rerun the same command" in r.output
    log = next(runs.rglob("run.log")).read_text()
    assert "stopped by the user (Ctrl-C / SIGINT)" in log
    monkeypatch.setattr(InputCopy, "generate", real)
    r = invoke("run", "-m", "input-copy", "-d", "demo", "-p", proto, "--runs-dir", runs, "--limit", "6", "--quiet")
    assert r.exit_code == 0 and "generated 4 image(s), 2 already present" in r.output


# ---------------------------------------------------------------------------
# seeds and layout
# ---------------------------------------------------------------------------
def test_seed_changes_hash_and_directory_and_seeds_summarise(tmp_path, proto):
    runs = tmp_path / "runs"
    base = run_demo(proto, runs, "--limit", "2")
    s7 = run_demo(proto, runs, "--limit", "2", "--seed", "7")
    assert s7 != base
    m0, m7 = (json.loads((d / "manifest.json").read_text()) for d in (base, s7))
    assert m7["seeds"]["seed"] == 7 and m0["seeds"]["seed"] == 0
    assert m7["protocol"]["hash"] != m0["protocol"]["hash"]
    r = invoke("run", "-m", "input-copy", "-d", "demo", "-p", proto, "--runs-dir", runs, "--limit", "2",
               "--seeds", "0,7,9", "--quiet")
    assert r.exit_code == 0, r.output
    assert "across 3 seeds (0, 7, 9): mean +- std" in r.output and "psnr" in r.output.split("across 3 seeds")[1]
    one_line_error(invoke("run", "-m", "input-copy", "-d", "demo", "--seeds", "0,x"), "--seeds")
    one_line_error(invoke("run", "-m", "input-copy", "-d", "demo", "--seeds", "1,1"), "repeated seed")


def test_layout_then_evaluate(tmp_path, proto):
    import csv

    from PIL import Image

    out = tmp_path / "layout"
    r = invoke("layout", "-d", "demo", "--limit", "3", "--out", out)
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((out / "samples.csv").open()))
    assert len(rows) == 3
    # fill it the way outside code would: one image per action folder
    from egobench.data import load_split

    split = load_split("demo", None, 3)
    for s in split:
        folder = out / s.clip_id / s.action_id
        assert folder.is_dir()
        Image.open(s.input_path).save(folder / Path(str(s.meta.get("image_1") or s.target_path.name)).name)
    r = invoke("evaluate", "--images", out, "-d", "demo", "-p", proto, "--limit", "3", "--out", tmp_path / "ev")
    assert r.exit_code == 0, r.output


def test_quiet_run_prints_nothing_on_stderr(tmp_path):
    """--quiet: no progress bar, no run-log INFO lines (open_clip's module-level logging.info used to
    install a root handler that echoed them), no library warnings; the results still print."""
    import subprocess
    import sys

    proto = tmp_path / "clip.yaml"
    proto.write_text(PSNR_ONLY + "  - name: clip\n    metric: clip\n    settings: {model: ViT-L-14}\n")
    res = subprocess.run([sys.executable, "-m", "egobench", "run", "-m", "input-copy", "-d", "demo", "-p",
                          str(proto), "--limit", "2", "--runs-dir", str(tmp_path / "runs"), "--quiet"],
                         capture_output=True, text=True, timeout=600, env={**os.environ})
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", res.stderr
    assert "clip" in res.stdout and "psnr" in res.stdout
