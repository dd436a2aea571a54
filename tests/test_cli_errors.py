"""Every user mistake ends in one line on stderr and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from egobench.cli import main
from tests.conftest import one_line_error


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_unknown_method_suggests(release):
    r = invoke("run", "--method", "input-cpy", "--dataset", "ego4d", "--data-root", str(release))
    one_line_error(r, "unknown method 'input-cpy'", "did you mean 'input-copy'")


def test_unknown_dataset_suggests():
    r = invoke("run", "--method", "oracle", "--dataset", "epickitchen")
    one_line_error(r, "unknown dataset 'epickitchen'", "did you mean 'epickitchens'")


def test_unknown_protocol_suggests(release):
    r = invoke("run", "--method", "oracle", "--dataset", "ego4d", "--data-root", str(release),
               "--protocol", "lego-oficial")
    one_line_error(r, "unknown protocol", "did you mean 'lego-official'")


def test_missing_data_root():
    r = invoke("run", "--method", "oracle", "--dataset", "ego4d")
    one_line_error(r, "no data root", "EGOBENCH_DATA")
    r = invoke("run", "--method", "oracle", "--dataset", "ego4d", "--data-root", "/nonexistent/x")
    one_line_error(r, "/nonexistent/x")


def test_malformed_split_json_names_file_and_line(release, tmp_path):
    p = release / "ego4d_val.json"
    p.write_text('{\n  "clip": {\n    "a": {"image_0": "x.jpg",,}\n  }\n}\n')
    r = invoke("run", "--method", "oracle", "--dataset", "ego4d", "--data-root", str(release))
    one_line_error(r, f"{p}:3:", "malformed JSON")


def test_split_entry_missing_key(release):
    p = release / "ego4d_val.json"
    data = json.loads(p.read_text())
    clip = sorted(data)[0]
    act = sorted(data[clip])[0]
    del data[clip][act]["image_1"]
    p.write_text(json.dumps(data))
    r = invoke("data", "verify", "--dataset", "ego4d", "--data-root", str(release))
    one_line_error(r, str(p), "missing key 'image_1'", act)


def test_missing_frame_named(release):
    victim = next((release / "EgoGen" / "ego4d.fho" / "val").rglob("*.jpg"))
    victim.unlink()
    r = invoke("run", "--method", "oracle", "--dataset", "ego4d", "--data-root", str(release), "--zoo", "tiny")
    one_line_error(r, str(victim), "missing")


def test_corrupt_input_frame_named_and_keep_going_records_it(release, tmp_path):
    data = json.loads((release / "ego4d_val.json").read_text())
    clip = sorted(data)[0]
    act = sorted(data[clip])[0]
    victim = release / "EgoGen" / "ego4d.fho" / "val" / data[clip][act]["image_0"]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    out = tmp_path / "run"
    r = invoke("run", "--method", "input-copy", "--dataset", "ego4d", "--data-root", str(release),
               "--zoo", "tiny", "--out", str(out), "--quiet")
    one_line_error(r, str(victim), "cannot decode")
    r = invoke("run", "--method", "input-copy", "--dataset", "ego4d", "--data-root", str(release),
               "--zoo", "tiny", "--out", str(out), "--quiet", "--keep-going")
    assert r.exit_code == 0, r.output
    assert "not scored: failed 1" in r.output
    assert list((out / "failures").glob("*.json"))


def test_corrupt_target_frame_named(release, tmp_path):
    victim = next((release / "EgoGen" / "ego4d.fho" / "val_gt_for_metric").rglob("*.jpg"))
    victim.write_bytes(b"not a jpeg at all")
    r = invoke("run", "--method", "input-copy", "--dataset", "ego4d", "--data-root", str(release),
               "--zoo", "tiny", "--out", str(tmp_path / "r"), "--quiet")
    one_line_error(r, str(victim))


def test_protocol_file_with_unknown_key(tmp_path, release):
    src = Path(__file__).resolve().parent.parent / "protocols" / "egobench-v1.yaml"
    bad = tmp_path / "mine.yaml"
    bad.write_text(src.read_text().replace("steps: 100", "stepz: 100"))
    r = invoke("run", "--method", "oracle", "--dataset", "ego4d", "--data-root", str(release), "--protocol", str(bad))
    one_line_error(r, str(bad), "unknown key 'stepz'", "did you mean 'steps'")


def test_bad_option_syntax(release):
    r = invoke("run", "--method", "oracle", "--dataset", "ego4d", "--data-root", str(release), "--weights", "nopath")
    one_line_error(r, "NAME=PATH")


def test_debug_shows_traceback():
    r = CliRunner().invoke(main, ["--debug", "run", "--method", "nope", "--dataset", "demo"])
    assert r.exit_code == 2


def test_nothing_half_written_after_error(release, tmp_path):
    victim = next((release / "EgoGen" / "epickitchen" / "val").rglob("*.jpg"))
    victim.write_bytes(b"garbage")
    out = tmp_path / "run"
    invoke("run", "--method", "input-copy", "--dataset", "epickitchens", "--data-root", str(release),
           "--zoo", "tiny", "--out", str(out), "--quiet", "--batch-size", "1")
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".tmp-egobench-")]
    assert leftovers == []
    for img in (out / "images").glob("*"):
        from PIL import Image

        Image.open(img).load()  # every image that exists is complete


@pytest.mark.parametrize("args", [["methods"], ["metrics"], ["protocols"], ["datasets"]])
def test_listing_commands(args):
    r = invoke(*args)
    assert r.exit_code == 0
    assert r.output.strip()


def test_missing_real_weights_fail_before_generation(release, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    out = tmp_path / "run"
    r = invoke("run", "--method", "input-copy", "--dataset", "ego4d", "--data-root", str(release),
               "--out", str(out), "--quiet")
    line = one_line_error(r, "weight artifacts not found locally", "egobench weights download")
    for name in ("egovlp-ego4d", "clip-vit-l-14", "inception-fid", "lpips-squeeze-backbone"):
        assert name in line
    assert not (out / "images").exists()


def test_demo_dataset_defaults_to_tiny_zoo_and_reruns_nothing(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--method", "input-copy", "--dataset", "demo", "--out", str(out), "--quiet", "--limit", "4",
            "--protocol", "egobench-v1"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert "generated 4 image(s), 0 already present" in r.output
    r = invoke(*args)
    assert "generated 0 image(s), 4 already present" in r.output


def test_misspelled_method_option_suggests_and_leaves_no_run_directory(tmp_path):
    r = invoke("run", "--method", "lego", "--dataset", "demo", "-o", "featurs_root=/x", "--limit", "1",
               "--runs-dir", str(tmp_path / "runs"))
    one_line_error(r, "featurs_root", "did you mean 'features_root'")
    assert not (tmp_path / "runs").exists()
    r = invoke("run", "--method", "input-copy", "--dataset", "demo", "-o", "x=1", "--runs-dir", str(tmp_path / "runs"))
    one_line_error(r, "input-copy", "takes no options")
    assert not (tmp_path / "runs").exists()


def test_evaluation_batch_size_is_its_own_option(tmp_path):
    r = invoke("run", "--method", "input-copy", "--dataset", "demo", "--eval-batch-size", "0", "--out",
               str(tmp_path / "r"))
    one_line_error(r, "--eval-batch-size must be at least 1")
    r = invoke("evaluate", "--images", str(tmp_path), "--dataset", "demo", "--batch-size", "0")
    one_line_error(r, "--batch-size must be at least 1")
    r = invoke("run", "--method", "input-copy", "--dataset", "demo", "--limit", "3", "--batch-size", "1",
               "--eval-batch-size", "3", "--quiet", "--protocol", "egobench-v1", "--out", str(tmp_path / "ok"))
    assert r.exit_code == 0, r.output
    assert "evaluate: 3/3 samples" in (tmp_path / "ok" / "logs" / "run.log").read_text()


# ---------------------------------------------------------------------------
# commands are one registry: "did you mean", duplicates refused, broken plugins named
# ---------------------------------------------------------------------------
def test_unknown_command_suggests_among_built_in_and_plugin_commands():
    one_line_error(invoke("trian"), "unknown command 'trian'", "did you mean 'train'", "available: ablate,")
    one_line_error(invoke("reprot"), "unknown command 'reprot'", "did you mean 'report'")  # a plugin command
    one_line_error(invoke("train", "leg"), "unknown train command 'leg'", "did you mean 'lego'",
                   "available: ip2p, ldm, lego, vllm")


def _fake_entry_points(monkeypatch, group: str, **refs: str) -> None:
    from importlib import metadata

    eps = [metadata.EntryPoint(name=n, value=v, group=group) for n, v in refs.items()]
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: eps if kw.get("group") == group else real(**kw))


def _group():
    import click

    from egobench.cli import _Group

    @click.group(cls=_Group)
    def g():
        """A test group."""

    @g.command("run")
    def run():
        """Built in."""
        click.echo("built-in run")

    return g


def test_a_plugin_command_named_like_a_built_in_one_is_refused(monkeypatch):
    _fake_entry_points(monkeypatch, "egobench.commands", run="egobench.userstudy:import_amt_cmd")
    for args in (["--help"], ["run"]):
        r = CliRunner().invoke(_group(), args)
        one_line_error(r, "command 'run' is registered twice (built in and entry point egobench.userstudy:import_amt_cmd)")


def test_a_plugin_command_that_cannot_be_imported_is_one_line_naming_it(monkeypatch):
    _fake_entry_points(monkeypatch, "egobench.commands", extra="no_such_package.cli:cmd")
    g = _group()
    r = CliRunner().invoke(g, ["--help"])  # listed (help read from source) without importing it
    assert r.exit_code == 0 and "extra" in r.output and "(plugin command from no_such_package.cli)" in r.output
    one_line_error(CliRunner().invoke(g, ["extra"]),
                   "command 'extra' could not be loaded from no_such_package.cli:cmd: ModuleNotFoundError")
    r = CliRunner().invoke(g, ["run"])
    assert r.exit_code == 0 and r.output == "built-in run\n"


def test_every_command_accepts_every_option_it_declares():
    """A shared option added to a command whose function lacks the parameter fails only when the command
    runs (a TypeError, not a one-line error): check each command's signature against its options."""
    import inspect

    import click

    def walk(cmd: click.Command, path: str):
        if isinstance(cmd, click.Group):
            ctx = click.Context(cmd)
            for name in cmd.list_commands(ctx):
                yield from walk(cmd.get_command(ctx, name), f"{path} {name}")
        elif cmd.callback is not None:
            yield path, cmd

    checked = 0
    for path, cmd in walk(main, "egobench"):
        fn = inspect.unwrap(cmd.callback)
        params = inspect.signature(fn).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        missing = [p.name for p in cmd.params if p.name and p.expose_value and p.name not in params]
        assert not missing, f"{path}: options {missing} are not parameters of {fn.__qualname__}"
        checked += 1
    assert checked > 20
