"""Protocols are typed and closed; registries validate names; plugins load by entry point."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import types
import typing

import pytest
import yaml

from egobench.errors import ConfigError, UnknownNameError
from egobench.metrics import METRICS
from egobench.metrics.settings import BUILTIN_SETTINGS
from egobench.protocol import (
    MetricSpec,
    Protocol,
    available_protocols,
    load_protocol,
    metric_settings_class,
    parse_protocol,
)
from egobench.registry import Registry
from tests.conftest import REPO


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


def _defaults(cls) -> dict:
    return dataclasses.asdict(cls())


@pytest.mark.parametrize("name", available_protocols())
def test_hash_ignores_description_comments_and_spelled_out_defaults(name):
    """The hash covers the resolved settings, not the YAML: the same settings written another way hash the same."""
    text = (REPO / "protocols" / f"{name}.yaml").read_text()
    base = parse_protocol(text, "p.yaml")
    data = yaml.safe_load(text)
    assert base.description and "\n#" in text
    # no comments, keys sorted
    assert parse_protocol(yaml.safe_dump(data, sort_keys=True), "a.yaml").hash == base.hash
    # another description, or none
    assert parse_protocol(yaml.safe_dump({**data, "description": "other words"}), "b.yaml").hash == base.hash
    assert parse_protocol(yaml.safe_dump({k: v for k, v in data.items() if k != "description"}), "c.yaml").hash == (
        base.hash)
    # every default spelled out, floats written as integers where the value is whole
    full = {**data, "generation": {**_defaults(type(base.generation)), **data["generation"]},
            "evaluation": _defaults(type(base.evaluation)),
            "metrics": [{**m, "settings": {**_defaults(metric_settings_class(m["metric"])), **m.get("settings", {})}}
                        for m in data["metrics"]]}
    for m in full["metrics"]:
        for k, v in m["settings"].items():
            if isinstance(v, float) and v.is_integer():
                m["settings"][k] = int(v)
    assert yaml.safe_dump(full) != yaml.safe_dump(data)
    assert parse_protocol(yaml.safe_dump(full), "d.yaml").hash == base.hash
    # every default left out
    bare = {**data, "generation": {k: v for k, v in data["generation"].items()
                                   if v != _defaults(type(base.generation))[k]},
            "metrics": [{**m, "settings": {k: v for k, v in m.get("settings", {}).items()
                                           if v != _defaults(metric_settings_class(m["metric"]))[k]}}
                        for m in data["metrics"]]}
    bare.pop("evaluation", None)
    assert yaml.safe_dump(bare) != yaml.safe_dump(data)
    assert parse_protocol(yaml.safe_dump(bare), "e.yaml").hash == base.hash


def _other_value(value, tp):
    """A valid value of type ``tp`` different from ``value`` (``_FIXED`` for a one-value ``Literal``)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return next((v for v in typing.get_args(tp) if v != value), _FIXED)
    if origin in (typing.Union, types.UnionType):
        return 0.5 if value is None else None
    if tp is bool:
        return not value
    if tp is int:
        return value + 1
    if tp is float:
        return value + 0.5
    if tp is str:
        return value + "x"
    raise AssertionError(f"no other value for {tp}")


_FIXED = object()


def _changes(proto: Protocol):
    """Every resolved setting of ``proto`` changed alone: (label, changed protocol)."""
    for section in ("generation", "evaluation"):
        obj = getattr(proto, section)
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            new = dataclasses.replace(obj, **{f.name: _other_value(getattr(obj, f.name), hints[f.name])})
            yield f"{section}.{f.name}", dataclasses.replace(proto, **{section: new})
    for i, m in enumerate(proto.metrics):
        cls = metric_settings_class(m.metric)
        resolved = dataclasses.asdict(cls(**m.settings))
        hints = typing.get_type_hints(cls)
        for key, value in resolved.items():
            other = _other_value(value, hints[key])
            if other is _FIXED:  # e.g. clip's model: ViT-L-14 is the only value
                continue
            changed = list(proto.metrics)
            changed[i] = MetricSpec(m.name, m.metric, {**m.settings, key: other})
            yield f"{m.name}.{key}", dataclasses.replace(proto, metrics=tuple(changed))
        renamed = list(proto.metrics)
        renamed[i] = MetricSpec(m.name + "-x", m.metric, m.settings)
        yield f"{m.name} renamed", dataclasses.replace(proto, metrics=tuple(renamed))
    yield "metric order", dataclasses.replace(proto, metrics=tuple(reversed(proto.metrics)))
    yield "metric dropped", dataclasses.replace(proto, metrics=proto.metrics[:-1])
    yield "name", dataclasses.replace(proto, name=proto.name + "-x")
    yield "version", dataclasses.replace(proto, version=proto.version + ".1")


@pytest.mark.parametrize("name", available_protocols())
def test_every_resolved_setting_moves_the_hash(name):
    base = load_protocol(name)
    seen = {base.hash: "base"}
    changes = list(_changes(base))
    assert len(changes) > 60  # generation, evaluation and every metric's every setting
    for label, proto in changes:
        assert proto.hash not in seen, f"{label} gives the hash of {seen.get(proto.hash)}"
        seen[proto.hash] = label


def test_builtin_settings_classes_are_the_metrics_own():
    """The torch-free settings the hash resolves through agree with each metric class's ``Settings``."""
    assert set(BUILTIN_SETTINGS) <= set(METRICS.names())
    for name, light in BUILTIN_SETTINGS.items():
        own = METRICS.get(name).Settings
        if own is light:
            continue
        assert [(f.name, f.default) for f in dataclasses.fields(own)] == [
            (f.name, f.default) for f in dataclasses.fields(light)], name
        assert typing.get_type_hints(own) == typing.get_type_hints(light), name


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


@pytest.mark.parametrize("name", available_protocols())
def test_protocol_files_name_only_files_in_the_repo(name):
    """Every document or module a shipped protocol points to is in the repository, and nothing outside it."""
    import re

    text = (REPO / "protocols" / f"{name}.yaml").read_text()
    named = set(re.findall(r"(?:docs|tests|egobench|scripts)/[\w./-]*\w\.(?:md|py)", text))
    for rel in named:
        assert (REPO / rel).is_file(), f"{name}.yaml names {rel}, which is not in the repository"
    assert "../" not in text, f"{name}.yaml refers to a path outside the repository"
    # any document named by its bare file name must be one the repository has
    in_repo = {p.name for p in REPO.rglob("*.md") if ".venv" not in p.parts}
    for doc in set(re.findall(r"[\w.-]+\.md\b", text)):
        assert doc in in_repo, f"{name}.yaml names {doc}, which is not in the repository"
