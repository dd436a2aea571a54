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
