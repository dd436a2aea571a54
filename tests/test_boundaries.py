"""Issue 15: the harness knows no model.

``egobench`` imports no model package (``lego``, ``baselines``) and no report code
(``reports``): methods, artifacts, commands, training commands and ablation tables come in
through entry points. These tests block the three packages in a fresh interpreter
(``sys.modules[name] = None`` makes every import of them fail) and run the harness there,
and scan egobench's sources for imports of them.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import write_protocol

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("lego", "baselines", "reports")
#: what the source scan also refuses: the other packages beside the harness
NOT_IMPORTED = (*BLOCKED, "editors", "diffusion_core", "egobench_bench")

PRELUDE = """
import sys
sys.modules.update(lego=None, baselines=None, reports=None)
import egobench
from egobench.cli import main


def loaded(prefixes=("lego", "baselines", "reports")):
    # the blocked names sit in sys.modules as None; anything else under them was imported
    return sorted(m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in prefixes)


def cli(*args):
    return main(list(args), standalone_mode=False)
"""


def _blocked(code: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run ``code`` after PRELUDE in a fresh interpreter with lego, baselines and reports blocked."""
    r = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def test_blocking_really_blocks():
    r = subprocess.run([sys.executable, "-c", PRELUDE + "import lego.method\n"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr


def test_input_copy_runs_end_to_end_without_lego_baselines_or_reports(release, tmp_path):
    proto = write_protocol(tmp_path / "p.yaml", metrics=("psnr", "lpips"), name="boundary")
    out = tmp_path / "run"
    r = _blocked(f"""
        cli("run", "--method", "input-copy", "--dataset", "ego4d", "--data-root", {str(release)!r},
            "--protocol", {str(proto)!r}, "--zoo", "tiny", "--out", {str(out)!r}, "--quiet")
        assert not loaded(), loaded()
        print("BLOCKED-RUN-OK")
    """)
    assert "BLOCKED-RUN-OK" in r.stdout
    assert "generated 3 image(s), 0 already present" in r.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "input-copy" and metrics["n_scored"] == 3
    assert metrics["metrics"]["psnr"]["value"] is not None and metrics["metrics"]["lpips"]["value"] is not None
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["state"] == "complete"
    assert manifest["method"]["origin"] == "entry point egobench.bounds:InputCopy"
    assert len([p for p in (out / "images").rglob("*") if p.is_file()]) == 3
    assert (out / "samples.parquet").is_file()


def test_listings_metrics_and_core_artifacts_without_the_blocked_packages():
    """Every metric module and every core artifact loads; the model packages' artifacts are
    named as not loadable instead of breaking the registry; the commands that live in the
    blocked packages fail as one line naming them."""
    r = _blocked("""
        import pytest
        from egobench.errors import ConfigError, UnknownNameError
        from egobench.methods import METHODS
        from egobench.metrics import METRICS
        from egobench.weights import ARTIFACTS

        for name in METRICS.names():
            METRICS.get(name)
        names = set(ARTIFACTS.names())
        assert {"lpips-squeeze-backbone", "inception-fid", "clip-vit-l-14", "egovlp-ego4d", "egovlp-epic",
                "blip-base-caption", "blip-large-caption", "vlm-judge-qwen2-vl-2b"} <= names, names
        assert not any(n.startswith(("lego-", "ip2p", "sd")) for n in names), names
        assert {"lego-ldm", "lego-vllm", "lego-train", "ip2p", "sdedit", "editors"} <= set(ARTIFACTS.broken), \
            ARTIFACTS.broken
        with pytest.raises(UnknownNameError, match="plugins that could not be loaded: .*ip2p"):
            ARTIFACTS.get("lego-ego4d-ldm")
        assert {"input-copy", "oracle", "lego"} <= set(METHODS.names())
        assert METHODS.get("oracle").is_bound
        with pytest.raises(ConfigError, match="method 'lego' could not be loaded from lego.method:LEGO"):
            METHODS.get("lego")
        for args in (["--help"], ["methods"], ["metrics"], ["protocols"], ["datasets"]):
            assert cli(*args) in (None, 0), args
        # the commands of the blocked packages: a one-line error (exit code 2) naming where they live
        for args in (["demo", "--quiet"], ["report", "--help"], ["train", "lego", "--help"]):
            assert cli(*args) == 2, args
        assert not loaded(), loaded()
        print("BLOCKED-LISTINGS-OK")
    """)
    assert "BLOCKED-LISTINGS-OK" in r.stdout
    assert re.search(r"^input-copy +bound ", r.stdout, re.M)  # `egobench methods` listed the bounds
    assert re.search(r"^lego +broken +\(cannot load: ", r.stdout, re.M)
    errors = [line for line in r.stderr.splitlines() if line.startswith("egobench: error: ")]
    assert len(errors) == 3, r.stderr
    for line, where in zip(errors, ("command 'demo' could not be loaded from reports.demo:demo_cmd",
                                    "command 'report' could not be loaded from reports.cli:report_cmd",
                                    "train command 'lego' could not be loaded from lego.cli:train_lego")):
        assert where in line and "ModuleNotFoundError" in line, line


# ---------------------------------------------------------------------------
# the sources: no import of the model or report packages, by statement or by name
# ---------------------------------------------------------------------------
IMPORT_LINE = re.compile(r"\b(import|from)\s+(" + "|".join(NOT_IMPORTED) + r")\b")
#: a module path of a blocked package as a string (importlib.import_module("lego.x"), "lego.x:Y")
_PKGS = "|".join(NOT_IMPORTED)
MODULE_REF = re.compile(rf"^({_PKGS})(\.\w+)+(:[\w.]+)?$|^({_PKGS})(\.\w+)*:[\w.]+$")


def _sources() -> list[Path]:
    files = sorted((ROOT / "egobench").rglob("*.py"))
    assert len(files) > 20
    return list(files)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_egobench_source_names_no_model_or_report_package(path):
    text = path.read_text(encoding="utf-8")
    lines = [f"{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1) if IMPORT_LINE.search(line)]
    assert not lines, lines
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in NOT_IMPORTED]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in NOT_IMPORTED:
            found.append(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_REF.match(node.value):
            found.append(f"{node.lineno}: {node.value!r}")
    assert not found, found


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The scan is not vacuous: each form of naming a blocked package is caught."""
    for src in ("import lego\n", "from baselines.ip2p import IP2P\n", "    from reports.html import x\n",
                "PROVIDERS = ('lego.method',)\n", "x = 'baselines.bounds:InputCopy'\n"):
        text = src
        by_line = bool(IMPORT_LINE.search(text))
        by_ref = any(isinstance(n, ast.Constant) and isinstance(n.value, str) and MODULE_REF.match(n.value)
                     for n in ast.walk(ast.parse(textwrap.dedent(text))))
        assert by_line or by_ref, src
    for fine in ("x = 'lego-official'\n", "m = 'lego'\n", "doc = 'LEGO (lego.method) is a model'\n"):
        assert not IMPORT_LINE.search(fine)
        assert not any(isinstance(n, ast.Constant) and isinstance(n.value, str) and MODULE_REF.match(n.value)
                       for n in ast.walk(ast.parse(fine))), fine


def test_the_option_helpers_are_the_harness_s_and_diffusion_core_reuses_them():
    """One implementation of the dataclass-to-click helpers (egobench's commands and the train commands
    use them): diffusion_core's names are egobench's, not a second copy."""
    import diffusion_core.options as core
    import egobench.options as harness

    for name in ("option", "option_like", "click_options", "from_click"):
        assert getattr(core, name) is getattr(harness, name), name
