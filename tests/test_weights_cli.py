"""`egobench weights` and `egobench prepare` through the CLI."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from egobench.cli import main


def test_weights_tiny_list_check(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    r = CliRunner().invoke(main, ["weights", "tiny", "--out", str(tmp_path / "zoo"), "lpips-squeeze-backbone"])
    assert r.exit_code == 0, r.output
    f = tmp_path / "zoo" / "lpips-squeeze-backbone" / "squeezenet1_1-b8a52dc0.pth"
    assert f.is_file()
    r = CliRunner().invoke(main, ["weights", "list"])
    assert r.exit_code == 0
    assert "lpips-squeeze-backbone" in r.output and "download.pytorch.org" in r.output and "missing" in r.output
    r = CliRunner().invoke(main, ["weights", "check", "lpips-squeeze-backbone"])
    assert r.exit_code == 1 and "missing" in r.output
    # a wrong file placed where the real one belongs fails the checksum check
    d = tmp_path / "weights" / "lpips-squeeze-backbone"
    d.mkdir(parents=True)
    (d / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("EGOBENCH_WEIGHTS", str(tmp_path / "weights"))
    r = CliRunner().invoke(main, ["weights", "check", "lpips-squeeze-backbone"])
    assert r.exit_code == 1 and "does not start with b8a52dc0" in r.output


def test_unknown_artifact_override_is_one_line(release):
    r = CliRunner().invoke(main, ["run", "--method", "oracle", "--dataset", "ego4d", "--data-root", str(release),
                                  "--weights", "lpips-squeez-backbone=/x"])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "did you mean 'lpips-squeeze-backbone'" in r.output


def test_prepare_cli_malformed_csv_names_line(tmp_path):
    src = Path(__file__).parent / "fixtures" / "epic100_validation_excerpt.csv"
    lines = src.read_text().splitlines()
    lines[3] = lines[3].replace(",", ";", 3)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    (tmp_path / "frames").mkdir()
    r = CliRunner().invoke(main, ["prepare", "epickitchens", "--annotations", str(bad), "--frames",
                                  str(tmp_path / "frames"), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"egobench: error: {bad}:4:"), r.output
    assert not (tmp_path / "out" / "epickitchen_val.json").exists()


def test_checksum_mismatch_at_run_time_is_an_error_naming_the_file(release, tmp_path, monkeypatch):
    from egobench.weights import build_tiny

    folder = build_tiny("lpips-squeeze-backbone", tmp_path / "w" / "lpips-squeeze-backbone")
    (folder / "EGOBENCH_TINY_ZOO.json").unlink()  # now it poses as the real file
    monkeypatch.setenv("EGOBENCH_WEIGHTS", str(tmp_path / "w"))
    import pytest

    from egobench.errors import MissingArtifactError
    from egobench.weights import WeightStore

    with pytest.raises(MissingArtifactError, match="squeezenet1_1-b8a52dc0.pth: sha256 does not start with b8a52dc0"):
        WeightStore(zoo="real").resolve("lpips-squeeze-backbone")


# ---------------------------------------------------------------------------
# every missing artifact names the one command that makes it available
# ---------------------------------------------------------------------------
def test_every_artifact_message_names_the_command_that_makes_it(tmp_path, monkeypatch):
    """For each registered artifact: 'weights check' and the run-time error name exactly one egobench
    command; for a downloadable artifact it is 'weights download NAME' and that command fetches it;
    for a made one it is 'convert lego' / 'train ...', and 'weights download NAME' names the same
    command instead of downloading; 'weights list' never shows an unknown source."""
    import re

    import huggingface_hub
    import pytest
    import torch.hub

    import egobench.weights as W
    from egobench.errors import MissingArtifactError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("EGOBENCH_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setattr(W, "_hf_cached_folder", lambda art: None)  # whatever this machine's HF cache holds
    fetched: list[str] = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, f, **kw: fetched.append(repo) or str(tmp_path / "hf" / f))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, **kw: fetched.append(url))

    names = W.ARTIFACTS.names()
    assert len(names) >= 30
    store = W.WeightStore(zoo="real")
    for name in names:
        art = W.ARTIFACTS.get(name)
        with pytest.raises(MissingArtifactError) as e:
            store.resolve(name)
        msg = str(e.value)
        assert "\n" not in msg
        commands = re.findall(r"'((?:egobench|hf) [^']+)'", msg)
        assert commands == [art.command], (name, msg)

        r = CliRunner().invoke(main, ["weights", "check", name])
        assert r.exit_code == 1 and f"'{art.command}'" in r.output, r.output

        fetched.clear()
        r = CliRunner().invoke(main, ["weights", "download", name])
        if art.downloadable:
            assert art.command == f"egobench weights download {name}"
            assert r.exit_code == 0 and fetched, (name, r.output)
        else:
            # made locally, or fetched whole from a hub repo whose file list is not pinned (editors' presets)
            assert art.command.startswith(("egobench convert lego --ckpt ", "egobench train ", "hf download ")), name
            assert (f"--out $EGOBENCH_WEIGHTS/{name}" in art.command
                    or f"--local-dir $EGOBENCH_WEIGHTS/{name}" in art.command)  # made where the store looks
            assert r.exit_code == 2 and not fetched, (name, r.output)
            assert f"'{art.command}'" in r.output and "weights download" not in r.output

    r = CliRunner().invoke(main, ["weights", "list"])
    assert r.exit_code == 0 and "unknown" not in r.output
    assert "made locally: 'egobench convert lego --ckpt ego4d_diffusion_with_vllm_feature.ckpt" in r.output


# ---------------------------------------------------------------------------
# weights that ask for remote code are refused
# ---------------------------------------------------------------------------
def _tiny_ip2p_with(tmp_path, config: str, key: str):
    import json
    import shutil

    from egobench.weights import build_tiny

    folder = tmp_path / f"ip2p-{key}"
    shutil.copytree(build_tiny("ip2p-init", tmp_path / "built"), folder)
    path = folder / config
    data = json.loads(path.read_text())
    data[key] = {"AutoModel": "modeling_evil.EvilModel"} if key == "auto_map" else True
    path.write_text(json.dumps(data))
    return folder, path


def test_weights_folder_asking_for_remote_code_is_refused(tmp_path):
    import pytest

    from egobench.errors import UserError
    from egobench.weights import WeightStore
    from lego.train import resolve_folder

    folder, path = _tiny_ip2p_with(tmp_path, "text_encoder/config.json", "auto_map")
    base = ["run", "-m", "ip2p", "-d", "demo", "--limit", "1", "--quiet"]
    for extra in (["-o", "finetuned=false", "--weights", f"ip2p-init={folder}"], ["-o", f"model={folder}"]):
        out = tmp_path / f"run-{len(extra)}"
        r = CliRunner().invoke(main, base + extra + ["--out", str(out)])
        assert r.exit_code == 2, r.output
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in r.output
        assert f"{path} asks for remote code ('auto_map')" in lines[0]
        assert not (out / "images").exists()

    folder, path = _tiny_ip2p_with(tmp_path, "model_index.json", "trust_remote_code")
    with pytest.raises(UserError, match="asks for remote code \\('trust_remote_code'\\)"):
        WeightStore(zoo="real", overrides={"ip2p-init": folder}).resolve("ip2p-init")
    with pytest.raises(UserError, match="asks for remote code"):
        resolve_folder(folder, WeightStore(zoo="tiny"))  # train --init FOLDER


def test_trust_remote_code_is_passed_nowhere():
    """No loader in egobench, lego, baselines or reports asks transformers / diffusers to run shipped code."""
    root = Path(__file__).resolve().parent.parent
    hits = [f"{p.relative_to(root)}:{i}" for pkg in ("egobench", "lego", "baselines", "reports")
            for p in sorted((root / pkg).rglob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if "trust_remote_code" in line and "REMOTE_CODE_KEYS" not in line and not line.lstrip().startswith("#")
            and "asks for remote code" not in line]
    assert [h for h in hits if not h.startswith("egobench/weights.py")] == [], hits


# ---------------------------------------------------------------------------
# artifacts come from providers: egobench's metric modules, and egobench.artifacts entry points
# ---------------------------------------------------------------------------
def _fake_artifact_entry_points(monkeypatch, **refs):
    from importlib import metadata

    eps = [metadata.EntryPoint(name=n, value=v, group="test.artifacts") for n, v in refs.items()]
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points",
                        lambda **kw: eps if kw.get("group") == "test.artifacts" else real(**kw))


def test_artifact_entry_points_objects_sequences_and_broken_providers(monkeypatch):
    import pytest

    from egobench.errors import ConfigError, UnknownNameError
    from egobench.weights import ArtifactRegistry

    _fake_artifact_entry_points(monkeypatch, one="tests.plugins.artifacts:PLUGIN_NET",
                                many="tests.plugins.artifacts:PLUGIN_NETS", gone="no_such_model_pkg.weights",
                                core="egobench.metrics.fid")
    reg = ArtifactRegistry("artifact", entry_point_group="test.artifacts")
    # a module entry point ("core") registers on import (into egobench's table), adding nothing here
    assert reg.names() == ["plugin-net", "plugin-net-a", "plugin-net-b"]
    assert reg.get("plugin-net-b").files == ("b.pt",)
    assert reg.registered_from("plugin-net") == "entry point tests.plugins.artifacts:PLUGIN_NET"
    assert list(reg.broken) == ["gone"] and "ModuleNotFoundError" in reg.broken["gone"]
    with pytest.raises(UnknownNameError, match=r"did you mean 'plugin-net'.*could not be loaded: gone "
                                               r"\(no_such_model_pkg.weights: ModuleNotFoundError"):
        reg.get("plugin-nett")

    _fake_artifact_entry_points(monkeypatch, bad="tests.plugins.artifacts:NOT_AN_ARTIFACT")
    with pytest.raises(ConfigError, match="bad = tests.plugins.artifacts:NOT_AN_ARTIFACT: str is not an egobench"):
        ArtifactRegistry("artifact", entry_point_group="test.artifacts").names()

    # the same name from two providers is refused
    _fake_artifact_entry_points(monkeypatch, one="tests.plugins.artifacts:PLUGIN_NET",
                                again="tests.plugins.artifacts:PLUGIN_NETS")
    reg = ArtifactRegistry("artifact", entry_point_group="test.artifacts")
    reg.add("plugin-net-a", "tests.plugins.artifacts:PLUGIN_NET", origin="elsewhere")
    with pytest.raises(ConfigError, match="artifact 'plugin-net-a' is registered twice"):
        reg.names()


def test_weights_list_names_a_provider_that_cannot_be_loaded(monkeypatch):
    import egobench.weights as W

    monkeypatch.setitem(W.ARTIFACTS.broken, "lego-ghost", "lego.ghost: ModuleNotFoundError: No module named 'x'")
    r = CliRunner().invoke(main, ["weights", "list"])
    assert r.exit_code == 0
    assert "egobench: warning: the artifacts of 'lego-ghost' are not listed: lego.ghost: ModuleNotFoundError" in r.output
