"""Issue 14 item 8: help and listing commands do not import torch or the plugin modules.

Speed itself is measured by ``egobench bench --items startup`` (not asserted in a timed
test); these tests pin what makes it fast, in fresh interpreters.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from egobench.cli import _plugin_short_help


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join('MOD:' + m for m in sys.modules))"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    return {line[4:] for line in out.splitlines() if line.startswith("MOD:")}


HEAVY = {"torch", "torchvision", "diffusers", "transformers", "open_clip", "lpips", "pandas", "torch_fidelity"}


def test_import_egobench_imports_no_heavy_library():
    mods = _modules_after("import egobench")
    assert not (mods & HEAVY), sorted(mods & HEAVY)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["metrics"], ["protocols"], ["datasets"]])
def test_help_and_listings_import_no_heavy_library(args):
    code = ("import sys\nfrom egobench.cli import main\n"
            f"sys.argv = ['egobench'] + {args!r}\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")
    mods = _modules_after(code)
    assert not (mods & HEAVY), (args, sorted(mods & HEAVY))
    # nor the modules of the plugin commands (report, demo, export-amt, convert, ...)
    assert not {"reports.cli", "reports.demo", "egobench.userstudy", "lego.cli", "lego.vllm_features"} & mods
    # nor any model or report package at all
    assert not {m for m in mods if m.split(".")[0] in ("lego", "baselines", "reports")}, args


def test_ablate_help_lists_the_registered_tables_without_importing_them():
    code = ("import sys\nfrom egobench.cli import main\n"
            "sys.argv = ['egobench', 'ablate', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join('MOD:' + m for m in sys.modules))"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "--table [3|4]" in out
    mods = {line[4:] for line in out.splitlines() if line.startswith("MOD:")}
    assert not (mods & HEAVY) and "lego.ablations" not in mods, sorted(mods & (HEAVY | {"lego.ablations"}))


def test_the_shim_still_applies_on_first_torchvision_import():
    mods = _modules_after("import egobench\nimport lpips\nimport open_clip\nimport torchvision.transforms")
    assert {"torchvision", "lpips", "open_clip"} <= mods


def test_plugin_help_read_from_source_equals_the_loaded_command():
    from importlib import metadata

    eps = list(metadata.entry_points(group="egobench.commands"))
    assert eps
    for ep in eps:
        cmd = ep.load()
        assert _plugin_short_help(ep, 70) == cmd.get_short_help_str(70), ep.name


def test_metric_listing_metadata_equals_the_classes():
    from egobench.metrics import LISTING_KEYS, METRICS

    for name in METRICS.names():
        listed = METRICS.describe(name, LISTING_KEYS)
        cls = METRICS.get(name)
        assert listed == {k: getattr(cls, k) for k in LISTING_KEYS}, name
        assert METRICS.describe(name, LISTING_KEYS) == listed  # loaded: read from the class


def test_protocol_listing_hash_equals_the_checked_load():
    from egobench.protocol import available_protocols, load_protocol

    for name in available_protocols():
        assert load_protocol(name, check_metrics=False).hash == load_protocol(name).hash
