"""Weights provenance: per-file digests, revisions, verified / unverified, the weights lock."""

from __future__ import annotations

import hashlib
import json

import pytest

from egobench.errors import DataError, UserError
from egobench.provenance import (
    artifact_record,
    footer,
    make_lock,
    read_lock,
    snapshot_revision,
    verify_download,
)
from egobench.weights import Artifact, Resolved

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _artifact(tmp_path, pins: bool, name="net"):
    folder = tmp_path / "models--org--net" / "snapshots" / COMMIT
    folder.mkdir(parents=True)
    (folder / "w.bin").write_bytes(b"weights")
    (folder / "c.json").write_text("{}")
    digests = {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in ("w.bin", "c.json")}
    art = Artifact(name=name, description="d", files=("w.bin", "c.json"), license="MIT", hf_repo="org/net",
                   sha256=digests if pins else {})
    return art, Resolved(name, folder, "hf-cache", False), digests


def test_snapshot_revision():
    assert snapshot_revision(f"/c/hub/models--a--b/snapshots/{COMMIT}") == COMMIT
    assert snapshot_revision(f"/c/hub/models--a--b/snapshots/{COMMIT}/sub") == COMMIT
    assert snapshot_revision("/weights/net") is None
    assert snapshot_revision("/c/snapshots/main") is None


def test_records_are_verified_only_when_every_file_matches_a_pin(tmp_path):
    art, res, digests = _artifact(tmp_path / "a", pins=True)
    rec = artifact_record(res, art)
    assert rec["verified"] == "verified" and rec["pinned_by"] == "registry"
    assert rec["revision"] == COMMIT and rec["hf_repo"] == "org/net"
    assert rec["files"]["w.bin"] == {"sha256": digests["w.bin"], "size": 7}
    art2, res2, _ = _artifact(tmp_path / "b", pins=False)
    assert artifact_record(res2, art2)["verified"] == "unverified"
    (res.path / "w.bin").write_bytes(b"other weights")
    assert artifact_record(res, art)["verified"] == "unverified"
    assert footer({"net": artifact_record(res, art), "x": rec}) == "weights: 1 unverified"
    assert footer({"x": rec}) == "weights: all verified"


def test_a_lock_round_trips_pins_and_refuses_a_changed_file_in_one_line(tmp_path):
    art, res, digests = _artifact(tmp_path / "a", pins=False)
    lock = make_lock({"net": artifact_record(res, art)})
    path = tmp_path / "weights.lock"
    path.write_text(json.dumps(lock.to_json()))
    back = read_lock(path)
    assert back.digest == lock.digest and back.artifacts["net"]["revision"] == COMMIT
    rec = artifact_record(res, art, back)
    assert rec["verified"] == "verified" and rec["pinned_by"] == "lock"
    back.check("net", rec)  # matches
    (res.path / "w.bin").write_bytes(b"retrained")
    changed = artifact_record(res, art, back)
    assert changed["verified"] == "unverified"
    with pytest.raises(UserError) as e:
        back.check("net", changed)
    msg = str(e.value)
    assert "\n" not in msg and "'net'" in msg and "w.bin" in msg and digests["w.bin"] in msg
    assert changed["files"]["w.bin"]["sha256"] in msg
    with pytest.raises(UserError, match="'other' is not in the lock"):
        back.check("other", changed)
    assert footer({}, back.short) == f"weights: locked {back.short}"


def test_a_hand_edited_or_foreign_lock_is_refused(tmp_path):
    art, res, _ = _artifact(tmp_path / "a", pins=False)
    data = make_lock({"net": artifact_record(res, art)}).to_json()
    data["artifacts"]["net"]["files"]["w.bin"]["sha256"] = "f" * 64
    (tmp_path / "edited.lock").write_text(json.dumps(data))
    with pytest.raises(DataError, match="digest does not match"):
        read_lock(tmp_path / "edited.lock")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(DataError, match="not an egobench weights lock"):
        read_lock(tmp_path / "other.json")
    with pytest.raises(UserError, match="file not found"):
        read_lock(tmp_path / "missing.lock")


def test_a_download_is_checked_against_the_registry_pins(tmp_path):
    art, res, digests = _artifact(tmp_path / "a", pins=True)
    assert verify_download(art, res.path) == []
    (res.path / "c.json").write_text('{"tampered": true}')
    bad = verify_download(art, res.path)
    assert len(bad) == 1 and "c.json" in bad[0] and digests["c.json"] in bad[0]


def test_weights_lock_then_run_with_it_and_a_changed_file_is_refused_before_any_work(tmp_path, release):
    import shutil

    from click.testing import CliRunner

    from egobench.cli import main
    from egobench.weights import WeightStore
    from tests.conftest import write_protocol

    proto = write_protocol(tmp_path / "p.yaml", metrics=("psnr", "lpips"), name="locked")
    folder = tmp_path / "lpips-copy"
    shutil.copytree(WeightStore(zoo="tiny").resolve("lpips-squeeze-backbone").path, folder)
    common = ["--zoo", "tiny", "--weights", f"lpips-squeeze-backbone={folder}"]
    r = CliRunner().invoke(main, ["weights", "lock", "--protocol", str(proto), "--out", str(tmp_path / "w.lock"),
                                  *common])
    assert r.exit_code == 0, r.output
    lock = json.loads((tmp_path / "w.lock").read_text())
    assert set(lock["artifacts"]) == {"lpips-squeeze-backbone"} and "weights: locked" in r.output
    run = ["run", "-m", "input-copy", "-d", "epickitchens", "--data-root", str(release), "--protocol", str(proto),
           "--quiet", "--weights-lock", str(tmp_path / "w.lock"), *common]
    r = CliRunner().invoke(main, [*run, "--out", str(tmp_path / "ok")])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "ok" / "manifest.json").read_text())
    rec = manifest["artifacts"]["lpips-squeeze-backbone"]
    assert rec["verified"] == "verified" and rec["pinned_by"] == "lock"
    assert manifest["weights_lock"]["digest"] == lock["digest"]
    weight_file = next(p for p in folder.iterdir() if p.suffix == ".pth")
    weight_file.write_bytes(weight_file.read_bytes() + b"\0")
    r = CliRunner().invoke(main, [*run, "--out", str(tmp_path / "refused")])
    assert r.exit_code != 0
    msg = str(r.exception) if r.exception and not isinstance(r.exception, SystemExit) else r.output
    assert "lpips-squeeze-backbone" in msg and weight_file.name in msg and "expected sha256" in msg
    assert not (tmp_path / "refused").exists()


def test_weights_lock_takes_further_artifacts_by_name(tmp_path):
    """An artifact no protocol metric or method class names (e.g. a method option's -o vllm=NAME) can be locked."""
    from click.testing import CliRunner

    from egobench.cli import main
    from tests.conftest import one_line_error, write_protocol

    proto = write_protocol(tmp_path / "p.yaml", metrics=("psnr",), name="psnr-only")
    base = ["weights", "lock", "--protocol", str(proto), "--zoo", "tiny"]
    r = CliRunner().invoke(main, [*base, "--artifact", "lpips-squeeze-backbone", "--out", str(tmp_path / "w.lock")])
    assert r.exit_code == 0, r.output
    assert set(json.loads((tmp_path / "w.lock").read_text())["artifacts"]) == {"lpips-squeeze-backbone"}
    one_line_error(CliRunner().invoke(main, [*base, "--artifact", "lpips-squeez", "--out", str(tmp_path / "x")]),
                   "lpips-squeez")
    assert not (tmp_path / "x").exists()
