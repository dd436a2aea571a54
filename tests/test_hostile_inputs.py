"""Hostile and careless inputs on the data side (issue 13): protocol YAML, split and
metadata JSON, frames that are bombs, animations, odd formats or symlinks.

Each must end in one line naming the file (and line, key or value), never a
traceback, a hang or a silently dropped sample.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from egobench.cli import main
from egobench.errors import ConfigError
from egobench.protocol import MAX_PROTOCOL_BYTES, load_protocol, parse_protocol

REPO = Path(__file__).resolve().parent.parent


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


def _one_line(msg: str, limit: int = 400) -> None:
    assert "\n" not in msg and len(msg) < limit, msg[:1000]


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
    _one_line(msg)
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
    _one_line(str(e.value))
    assert f"{path}:3: YAML nested deeper than" in str(e.value)


def test_non_utf8_protocol_names_line_and_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: x\nversion: '1'\ndescription: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as e:
        load_protocol(path)
    _one_line(str(e.value))
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
        _one_line(str(e.value), 300)


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
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.output.strip().count("\n") == 0, r.output
    assert not (tmp_path / "runs").exists()
