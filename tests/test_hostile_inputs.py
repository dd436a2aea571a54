"""Hostile and careless inputs on the data side (issue 13): protocol YAML, split and
metadata JSON, frames that are bombs, animations, odd formats or symlinks.

Each must end in one line naming the file (and line, key or value), never a
traceback, a hang or a silently dropped sample.
"""

from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from egobench.cli import main
from egobench.data import load_split
from egobench.data.verify import verify
from egobench.errors import ConfigError, DataError
from egobench.protocol import MAX_PROTOCOL_BYTES, load_protocol, parse_protocol
from tests.conftest import REPO, assert_one_line, bomb_png, one_line_error


@contextlib.contextmanager
def within(seconds: float):
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``."""

    def _alarm(signum, frame):
        raise TimeoutError(f"took longer than {seconds}s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- protocol YAML ---------------------------------------------------------------


def _billion_laughs() -> str:
    """About 1 KB of YAML expanding to 10**9 strings, inside a field that expects a string."""
    lines = ["name: bomb", "version: '1'", "description:"]
    lines.append('  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]')
    for i in range(1, 9):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly_with_a_line(tmp_path):
    text = _billion_laughs()
    assert len(text) < 1100
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    with within(10), pytest.raises(ConfigError) as e:
        load_protocol(path)
    msg = str(e.value)
    assert_one_line(msg)
    assert msg.startswith(f"{path}:") and "aliases" in msg


def test_many_small_aliases_that_double_are_refused(tmp_path):
    # each level holds only two aliases (few aliases in all) but doubles the size
    lines = ["name: x", "version: '1'", "description:", "  a0: &a0 [x, x]"]
    lines += [f"  a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 40)]
    with within(10), pytest.raises(ConfigError, match="expands to more than"):
        parse_protocol("\n".join(lines) + "\n", "p.yaml")


def test_deep_nesting_is_a_line_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: x\nversion: '1'\ndescription: " + "[" * 20000 + "]" * 20000 + "\n")
    with within(20), pytest.raises(ConfigError) as e:
        load_protocol(path)
    assert_one_line(str(e.value))
    assert f"{path}:3: YAML nested deeper than" in str(e.value)


def test_non_utf8_protocol_names_line_and_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: x\nversion: '1'\ndescription: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as e:
        load_protocol(path)
    assert_one_line(str(e.value))
    assert f"{path}:3: not UTF-8" in str(e.value) and "0xe9" in str(e.value)


def test_oversized_protocol_file_is_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: x\nversion: '1'\ndescription: " + "y" * (MAX_PROTOCOL_BYTES + 10) + "\n")
    with pytest.raises(ConfigError, match="over the limit"):
        load_protocol(path)


def test_error_messages_truncate_huge_values():
    huge = "z" * 50_000
    for text in (
        f"name: x\nversion: '1'\ngeneration: {{steps: {huge}}}\n",
        f"name: x\nversion: '1'\ngeneration: {{output_format: {huge}}}\n",
        f"name: x\nversion: '1'\n{huge}: 1\n",
        "name: x\nversion: '1'\ndescription: [" + ", ".join(["item"] * 5000) + "]\n",
    ):
        with pytest.raises(ConfigError) as e:
            parse_protocol(text, "p.yaml")
        assert_one_line(str(e.value), limit=300)


def test_a_key_written_twice_is_an_error_naming_both_lines():
    text = (REPO / "protocols" / "egobench-v1.yaml").read_text()
    text = text.replace("  steps: 100\n", "  steps: 100\n  steps: 20\n")
    with pytest.raises(ConfigError, match=r"p.yaml:\d+: key 'steps' written twice .*first on line \d+"):
        parse_protocol(text, "p.yaml")


def test_self_referencing_alias_is_refused():
    text = "name: x\nversion: '1'\nmetrics:\n  - name: psnr\n    metric: psnr\n    settings: &s {x: *s}\n"
    with pytest.raises(ConfigError, match=r"p.yaml:6: alias \*s refers to a node that contains it"):
        parse_protocol(text, "p.yaml")


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system [\"touch {marker}\"]",
    "!!python/object/new:os.system [\"touch {marker}\"]",
    "!!python/name:os.system",
])
def test_yaml_tags_run_no_code(tmp_path, tag):
    marker = tmp_path / "pwned"
    text = "name: " + tag.format(marker=marker) + "\nversion: '1'\n"
    with pytest.raises(ConfigError, match="malformed YAML"):
        parse_protocol(text, "p.yaml")
    assert not marker.exists()


def test_shipped_protocols_pass_the_limits():
    for name in ("lego-official", "egobench-v1"):
        assert load_protocol(name).name == name


def test_run_with_a_hostile_protocol_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_billion_laughs())
    with within(30):
        r = CliRunner().invoke(main, ["run", "-m", "input-copy", "-d", "demo", "-p", str(path),
                                      "--runs-dir", str(tmp_path / "runs")])
    one_line_error(r)
    assert not (tmp_path / "runs").exists()


# -- split and metadata JSON -------------------------------------------------------


def _set_meta(release: Path, clip_value) -> tuple[Path, str]:
    path = release / "ego4d_metadata.json"
    meta = json.loads(path.read_text())
    clip = sorted(meta)[0]
    meta[clip] = clip_value
    path.write_text(json.dumps(meta))  # json writes NaN / Infinity as the bare literals
    return path, clip


@pytest.mark.parametrize("name", ["ego4d_val.json", "ego4d_metadata.json"])
def test_deeply_nested_split_json_is_one_line(release, name):
    path = release / name
    data = json.loads(path.read_text())
    # 20,000 levels under one key: the text nests deeper than any parser recursion limit
    text = json.dumps(data)[:-1] + ', "deep": ' + "[" * 20000 + "]" * 20000 + "}"
    path.write_text(text)
    with pytest.raises(DataError) as e:
        load_split("ego4d", release)
    assert_one_line(str(e.value))
    assert str(e.value).startswith(f"{path}:1:") and "nested deeper" in str(e.value)


def test_a_clip_written_twice_in_the_split_is_refused_naming_line_and_key(release):
    path = release / "ego4d_val.json"
    data = json.loads(path.read_text())
    clip = sorted(data)[0]
    # the same clip id twice in the text, each with a different action: json.loads keeps only the last
    body = json.dumps({clip: data[clip]}, indent=1)[1:-1]
    other = json.dumps({clip: {"extra_act": next(iter(data[clip].values()))}}, indent=1)[1:-1]
    path.write_text("{" + body + "," + other + "}")
    second_line = path.read_text().splitlines().index(f' "{clip}": {{', 2) + 1
    with pytest.raises(DataError) as e:
        load_split("ego4d", release)
    assert str(e.value).startswith(f"{path}:{second_line}: duplicate key '{clip}'"), str(e.value)
    assert_one_line(str(e.value))


def test_a_duplicate_clip_in_metadata_is_refused(release):
    path = release / "ego4d_metadata.json"
    meta = json.loads(path.read_text())
    clip = sorted(meta)[0]
    path.write_text(json.dumps(meta)[:-1] + f', "{clip}": {{"height": 1, "width": 1}}}}')
    with pytest.raises(DataError, match=rf"ego4d_metadata.json:1: duplicate key '{clip}'"):
        load_split("ego4d", release)


@pytest.mark.parametrize("key,value,shown", [
    ("height", float("nan"), "nan"),
    ("height", float("inf"), "inf"),
    ("width", "256", "'256'"),
    ("height", -256, "-256"),
    ("width", 0, "0"),
    ("height", True, "True"),
    ("height", 2.5, "2.5"),
    ("width", [256], "[256]"),
    ("height", 10**12, "1000000000000"),
])
def test_bad_metadata_sizes_are_named_at_load(release, key, value, shown):
    clip_meta = {"height": 192, "width": 256, key: value}
    path, clip = _set_meta(release, clip_meta)
    with pytest.raises(DataError) as e:
        load_split("ego4d", release)
    msg = str(e.value)
    assert_one_line(msg)
    assert msg.startswith(f"{path}: clip '{clip}': '{key}' must be a whole number") and msg.endswith(
        "remove the key") and f"got {shown};" in msg


def test_extreme_metadata_aspect_and_non_object_clip_entries_are_refused(release):
    path, clip = _set_meta(release, {"height": 1, "width": 60000})
    with pytest.raises(DataError, match=rf"{clip}'.*60000x1 has an aspect ratio beyond"):
        load_split("ego4d", release)
    _set_meta(release, [256, 192])
    with pytest.raises(DataError, match=rf"clip '{clip}': expected an object with height and width, got \[256, 192\]"):
        load_split("ego4d", release)


def test_good_and_absent_metadata_sizes_load(release):
    _, clip = _set_meta(release, {"height": 192.0, "width": 256})
    split = load_split("ego4d", release)
    s = next(s for s in split if s.clip_id == clip)
    assert (s.meta["height"], s.meta["width"]) == (192, 256) and isinstance(s.meta["height"], int)
    _set_meta(release, {"fps": 30})
    s = next(s for s in load_split("ego4d", release) if s.clip_id == clip)
    assert s.meta["height"] is None and s.meta["width"] is None


def test_bad_metadata_through_run_is_one_line_before_any_output(release, tmp_path):
    _set_meta(release, {"height": float("nan"), "width": 256})
    r = CliRunner().invoke(main, ["run", "-m", "input-copy", "-d", "ego4d", "--data-root", str(release),
                                  "-p", "egobench-v1", "--runs-dir", str(tmp_path / "runs"), "--zoo", "tiny"])
    one_line_error(r, "'height' must be a whole number")
    assert not (tmp_path / "runs").exists()


# -- frames --------------------------------------------------------------------------


def _epic_frames(release: Path) -> list[Path]:
    """Every frame the epickitchens split reads (inputs from val/, targets from val_gt_for_metric/)."""
    return [p for s in load_split("epickitchens", release) for p in (s.input_path, s.target_path)]


def _write_variant(path: Path, kind: str) -> None:
    """Replace a frame with a hostile or odd variant of the same picture."""
    img = Image.open(path).convert("RGB")
    if kind == "bomb":
        path.write_bytes(bomb_png())
    elif kind == "animated-gif":
        img.save(path, format="GIF", save_all=True, append_images=[img.rotate(90)], duration=50, loop=0)
    elif kind == "multi-page-tiff":
        img.save(path, format="TIFF", save_all=True, append_images=[img.rotate(90)])
    elif kind == "truncated-jpeg":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "webp":
        img.save(path, format="WEBP", lossless=True)
    elif kind == "icc":
        from PIL import ImageCms

        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        img.save(path, format="JPEG", quality=95, icc_profile=icc)
    else:  # pragma: no cover
        raise ValueError(kind)


BAD_KINDS = {
    "bomb": "decompression bomb",
    "animated-gif": "GIF file with 2 frames",
    "multi-page-tiff": "TIFF file with 2 frames",
    "truncated-jpeg": "cannot decode image",
    "empty": "empty file",
}
NOTE_KINDS = {"webp": "WEBP data in a .jpg file", "icc": "embedded ICC colour profile"}


def test_verify_lists_every_hostile_frame_with_its_reason(tmp_path):
    from tests.conftest import make_release

    release = make_release(tmp_path / "release", n_per=4)
    frames = _epic_frames(release)
    kinds = list(BAD_KINDS) + list(NOTE_KINDS)
    assert len(frames) >= len(kinds)
    for frame, kind in zip(frames, kinds, strict=False):
        _write_variant(frame, kind)
    with within(60):
        rep = verify("epickitchens", release)
    assert len(rep.bad) == len(BAD_KINDS) and len(rep.notes) == len(NOTE_KINDS)
    for frame, kind in zip(frames, kinds, strict=False):
        listed = rep.bad if kind in BAD_KINDS else rep.notes
        line = next(b for b in listed if b.startswith(f"{frame}:"))
        assert (BAD_KINDS | NOTE_KINDS)[kind].lower() in line.lower(), line
        assert_one_line(line)
    r = CliRunner().invoke(main, ["data", "verify", "--dataset", "epickitchens", "--data-root", str(release)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"{len(BAD_KINDS)} bad frame(s)" in r.output and f"{len(NOTE_KINDS)} frame note(s)" in r.output


def test_a_bomb_frame_in_a_run_is_named_in_one_line(release, tmp_path):
    frame = _epic_frames(release)[0]
    frame.write_bytes(bomb_png())
    r = CliRunner().invoke(main, ["run", "-m", "input-copy", "-d", "epickitchens", "--data-root", str(release),
                                  "-p", "egobench-v1", "--runs-dir", str(tmp_path / "runs"), "--zoo", "tiny"])
    one_line_error(r, str(frame))


def test_symlinked_frames_are_followed_and_counted(release, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    frames = _epic_frames(release)
    target = outside / "frame.jpg"
    target.write_bytes(frames[0].read_bytes())
    frames[0].unlink()
    frames[0].symlink_to(target)
    inside = frames[1]
    moved = inside.with_name("real_" + inside.name)
    inside.rename(moved)
    inside.symlink_to(moved)
    before = load_split("epickitchens", release).fingerprint
    rep = verify("epickitchens", release)
    assert rep.ok and rep.outside_root == 1 and "1 frame(s) are symbolic links" in rep.summary()
    # the fingerprint follows the content the link points to
    Image.new("RGB", (80, 45), (1, 2, 3)).save(target)
    assert load_split("epickitchens", release).fingerprint != before


@pytest.mark.parametrize("kind", ["dangling", "loop", "folder"])
def test_broken_frame_links_are_a_missing_frame_line(release, tmp_path, kind):
    frame = _epic_frames(release)[0]
    frame.unlink()
    if kind == "dangling":
        frame.symlink_to(tmp_path / "nowhere.jpg")
    elif kind == "loop":
        frame.symlink_to(frame)
    else:
        frame.symlink_to(tmp_path)
    with pytest.raises(DataError) as e:
        load_split("epickitchens", release)
    assert str(e.value).startswith(f"{frame}: frame referenced by") and "is missing" in str(e.value)
    assert_one_line(str(e.value))
