"""Protocols are typed and closed; registries validate names; plugins load by entry point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from egobench.errors import ConfigError, UnknownNameError
from egobench.protocol import available_protocols, load_protocol, parse_protocol
from egobench.registry import Registry

REPO = Path(__file__).resolve().parent.parent


def test_shipped_protocols_and_their_generation_settings():
    assert {"lego-official", "egobench-v1"} <= set(available_protocols())
    off = load_protocol("lego-official")
    g = off.generation
    assert (g.steps, g.text_guidance, g.image_guidance, g.seed, g.scheduler) == (100, 7.5, 1.5, 0, "euler-ancestral")
    assert (g.seed_policy, g.value_map, g.output_format, g.output_layout) == ("global", "minmax", "jpeg", "official")
    v1 = load_protocol("egobench-v1")
    assert (v1.generation.seed_policy, v1.generation.value_map, v1.generation.output_format) == (
        "per-sample", "clamp", "png")
    lp = {m.name: m for m in off.metrics}["lpips"]
    assert lp.settings["input_range"] == "unit" and lp.settings["net"] == "squeeze"
    assert {m.name: m for m in v1.metrics}["lpips"].settings["input_range"] == "signed"
    assert off.hash != v1.hash and len(off.hash) == 64


def _text(**changes):
    text = (REPO / "protocols" / "egobench-v1.yaml").read_text()
    for a, b in changes.items():
        text = text.replace(a, b)
    return text


def test_unknown_and_mistyped_keys_are_errors():
    with pytest.raises(ConfigError, match="unknown key 'stepz'.*did you mean 'steps'"):
        parse_protocol(_text(**{"steps: 100": "stepz: 100"}), "p.yaml")
    with pytest.raises(ConfigError, match="generation.steps: expected an integer"):
        parse_protocol(_text(**{"steps: 100": "steps: many"}), "p.yaml")
    with pytest.raises(ConfigError, match="'webp' is not one of"):
        parse_protocol(_text(**{"output_format: png": "output_format: webp"}), "p.yaml")
    with pytest.raises(ConfigError, match=r"metrics\[\d+\].settings: unknown key 'nett'"):
        parse_protocol(_text(**{"{net: squeeze": "{nett: squeeze"}), "p.yaml")
    with pytest.raises(UnknownNameError, match="unknown metric 'lpipz'"):
        parse_protocol(_text(**{"metric: lpips": "metric: lpipz"}), "p.yaml")
    with pytest.raises(ConfigError, match=r"p.yaml:\d+: malformed YAML"):
        parse_protocol("name: [unclosed\n", "p.yaml")
    with pytest.raises(ConfigError, match="missing required key 'version'"):
        parse_protocol("name: x\n", "p.yaml")


def test_registry_decorator_duplicates_and_suggestions():
    reg: Registry = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        pass

    assert reg.get("alpha") is Alpha
    with pytest.raises(ConfigError, match="registered twice"):
        reg.add("alpha", object())
    with pytest.raises(UnknownNameError, match="did you mean 'alpha'"):
        reg.get("alpah")
    reg.add("lazy", "pathlib:PurePosixPath")
    from pathlib import PurePosixPath

    assert reg.get("lazy") is PurePosixPath


def test_external_package_registers_through_entry_points(tmp_path):
    """A separately installed package's method appears without egobench importing it by name."""
    site = tmp_path / "site"
    pkg = site / "mymethods"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        from egobench.methods import Method, load_rgb
        class Mine(Method):
            name = "mine"
            summary = "an outside author's method"
            def generate(self, samples, seeds):
                return [load_rgb(s.input_path) for s in samples]
    """))
    dist = site / "mymethods-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mymethods\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[egobench.methods]\nmine = mymethods:Mine\n")
    code = (
        f"import sys; sys.path.insert(0, {str(site)!r})\n"
        "from egobench.methods import METHODS\n"
        "assert 'mymethods' not in sys.modules\n"
        "print(sorted(METHODS.names()))\n"
        "print(METHODS.get('mine').summary)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "'mine'" in out.stdout and "'input-copy'" in out.stdout and "'oracle'" in out.stdout
    assert "an outside author's method" in out.stdout


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in readme and "make demo" in readme
    assert "make test" in ci
