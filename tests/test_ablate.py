"""`egobench ablate` on the demo split with the tiny zoo."""

from __future__ import annotations

import dataclasses
import json

import pytest

from egobench.ablate import ablate
from egobench.protocol import load_protocol


def _fast_protocol():
    p = load_protocol("egobench-v1")
    return dataclasses.replace(
        p, generation=dataclasses.replace(p.generation, steps=2),
        metrics=tuple(m for m in p.metrics if m.name in ("psnr", "lpips", "clip")),
    )


def test_table4_runs_both_vllm_variants_and_is_resumable(tmp_path):
    res = ablate("demo", protocol=_fast_protocol(), limit=2, runs_dir=tmp_path / "runs", tables=(4,),
                 progress=False)
    assert [label for label, _ in res.rows(4)] == ["w/o finetuning", "w/ finetuning",
                                                   "VLLM backend: Qwen2-VL-2B-Instruct"]
    a, b, backend = (r for _, r in res.rows(4))
    assert len({a.run_dir, b.run_dir, backend.run_dir}) == 3
    md = (res.out / "tables.md").read_text()
    assert "Table 4" in md and "w/o finetuning" in md and "NOT COMPARABLE" in md
    saved = json.loads((res.out / "tables.json").read_text())
    assert len(saved["table4"]) == 3
    again = ablate("demo", protocol=_fast_protocol(), limit=2, runs_dir=tmp_path / "runs", tables=(4,),
                   progress=False)
    assert all(r.generated == 0 for _, r in again.rows(4))  # resumed: nothing regenerated


def test_table3_fills_every_conditioning_row(tmp_path):
    res = ablate("demo", protocol=_fast_protocol(), limit=2, runs_dir=tmp_path / "runs", tables=(3,),
                 progress=False)
    assert [label for label, _ in res.rows(3)] == [
        "Action labels", "Descriptions", "Descriptions + image emb.", "Descriptions + text emb.",
        "Descriptions + joint emb."]
    assert [r.run_dir.parts[-2] for _, r in res.rows(3)] == ["ip2p", "lego-desc", "lego-img", "lego-txt", "lego"]
    for _, r in res.rows(3):
        assert r.metrics["psnr"]["value"] is not None
    assert "Table 3" in (res.out / "tables.md").read_text()


# ---------------------------------------------------------------------------
# the tables are data from the registry (egobench.ablations entry points), not method names
# ---------------------------------------------------------------------------
def test_the_paper_tables_come_from_lego_through_entry_points():
    from egobench.ablate import ABLATIONS, ablation_table, table_keys
    from egobench.methods import METHODS

    assert table_keys() == ["3", "4"]
    assert ABLATIONS.registered_from("3") == "entry point lego.ablations:TABLE3"
    for key in table_keys():
        table = ablation_table(key)
        assert table.title.startswith(f"Table {key}: ")
        for row in table.rows:
            assert row.method in METHODS, row
            assert row.features == (row.method != "ip2p"), row  # every LEGO variant reads the VLLM features


ECHO = "tests.plugins.methods:OptionsEcho"


def _psnr_protocol():
    p = load_protocol("egobench-v1")
    return dataclasses.replace(p, metrics=tuple(m for m in p.metrics if m.name == "psnr"))


@pytest.fixture
def tables(monkeypatch):
    import egobench.ablate as A
    from egobench.registry import Registry

    reg = Registry("ablation table")
    monkeypatch.setattr(A, "ABLATIONS", reg)
    return reg


def test_rows_get_the_shared_feature_options_only_when_their_data_says_so(tables, tmp_path):
    tables.add("7", {"title": "Table 7: echo", "rows": [
        {"label": "no features", "method": ECHO, "options": {"flavour": "a"}},
        {"label": "features", "method": ECHO, "options": {"flavour": "b"}, "features": True},
    ]})
    tables.add("8", {"title": "Table 8: not run", "rows": [{"label": "x", "method": ECHO}]})
    feat = tmp_path / "feat"
    res = ablate("demo", protocol=_psnr_protocol(), limit=2, runs_dir=tmp_path / "runs", tables=(7,),
                 features_root=feat, compute_features=True, progress=False)
    (label_a, a), (label_b, b) = res.rows(7)
    assert (label_a, label_b) == ("no features", "features") and res.rows(8) == []
    opts = [json.loads((r.run_dir / "manifest.json").read_text())["method"]["options"] for r in (a, b)]
    assert opts == [{"flavour": "a"}, {"flavour": "b", "features_root": str(feat), "compute_features": True}]
    md = (res.out / "tables.md").read_text()
    assert md.startswith("### Table 7: echo\n") and "Table 8" not in md and md.endswith("\n\n")
    saved = json.loads((res.out / "tables.json").read_text())
    assert [r["row"] for r in saved["table7"]] == ["no features", "features"] and "table8" not in saved
    assert saved["identity"]["tables"] == [7]


def test_a_malformed_or_unknown_table_fails_before_any_run(tables, tmp_path):
    from egobench.errors import ConfigError, UnknownNameError

    tables.add("7", {"title": "Table 7", "rows": [{"label": "a", "methd": ECHO}]})
    tables.add("9", {"title": "Table 9", "rows": [{"label": "a", "method": ECHO}]})
    with pytest.raises(ConfigError, match=r"ablation table 7 \(builtin\)\.rows\[0\]: unknown key 'methd' "
                                          r"\(did you mean 'method'\?\)"):
        ablate("demo", protocol=_psnr_protocol(), limit=1, runs_dir=tmp_path / "runs", tables=(9, 7), progress=False)
    with pytest.raises(UnknownNameError, match=r"unknown ablation table '19' \(did you mean '9'\?\)"):
        ablate("demo", protocol=_psnr_protocol(), limit=1, runs_dir=tmp_path / "runs", tables=(19,), progress=False)
    tables.add("10", {"title": "Table 10", "rows": []})
    with pytest.raises(ConfigError, match="ablation table 10 .* has no rows"):
        ablate("demo", protocol=_psnr_protocol(), limit=1, runs_dir=tmp_path / "runs", tables=(10,), progress=False)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------
# --prompts: one editor with the action label, the enriched description and an instruction
# ---------------------------------------------------------------------------
MAGICBRUSH = "editors.presets:MagicBrush"


@pytest.mark.usefixtures("one_thread")
def test_prompt_ablation_runs_one_editor_per_template_as_one_table(tmp_path):
    from egobench.ablate import PROMPT_ROWS, prompt_ablation

    kw = dict(protocol=_psnr_protocol(), limit=1, runs_dir=tmp_path / "runs", progress=False,
              method_options={"steps": 2, "size": 64})
    res = prompt_ablation(MAGICBRUSH, "demo", **kw)
    rows = res.rows("prompts")
    assert [label for label, _ in rows] == ["action label", "enriched description", "templated instruction"]
    manifests = [json.loads((r.run_dir / "manifest.json").read_text()) for _, r in rows]
    assert [m["method"]["options"]["prompt"] for m in manifests] == [t for _, t in PROMPT_ROWS]
    assert all(m["method"]["options"]["steps"] == 2 for m in manifests)
    images = [{p.name: p.read_bytes() for p in (r.run_dir / "images").iterdir()} for _, r in rows]
    assert images[0].keys() == images[1].keys() and images[0] != images[1]  # the prompt reaches the editor
    md = (res.out / "tables.md").read_text()
    assert md.startswith("### Prompts: ") and "| row | method | prompt | psnr" in md.replace("PSNR", "psnr")
    assert "| enriched description |" in md and "`{description}`" in md and "NOT COMPARABLE" in md
    saved = json.loads((res.out / "tables.json").read_text())
    assert [r["row"] for r in saved["tableprompts"]] == [label for label, _ in PROMPT_ROWS]
    assert saved["identity"]["method"] == MAGICBRUSH
    again = prompt_ablation(MAGICBRUSH, "demo", **kw)
    assert all(r.generated == 0 for _, r in again.rows("prompts"))  # resumed: nothing regenerated


def test_prompt_ablation_refuses_before_any_run(tmp_path):
    from egobench.ablate import prompt_ablation
    from egobench.errors import ConfigError

    kw = dict(protocol=_psnr_protocol(), limit=1, runs_dir=tmp_path / "runs", progress=False)
    with pytest.raises(ConfigError, match="method 'ip2p' takes no prompt template"):
        prompt_ablation("ip2p", "demo", **kw)
    with pytest.raises(ConfigError, match="-o prompt= is what --prompts varies"):
        prompt_ablation(MAGICBRUSH, "demo", method_options={"prompt": "{action}"}, **kw)
    with pytest.raises(ConfigError, match=r"\{object\} is unknown"):
        prompt_ablation(MAGICBRUSH, "demo", templates=[("a", "{action}"), ("b", "{verb} the {object}")], **kw)
    assert not (tmp_path / "runs").exists()


@pytest.mark.usefixtures("one_thread")
def test_ablate_command_runs_the_prompt_table_and_takes_the_common_run_options(tmp_path):
    """Through the top-level command (its shared run options, --weights-lock included, reach ablate)."""
    from click.testing import CliRunner

    from egobench.cli import main
    from tests.conftest import one_line_error, write_protocol

    proto = write_protocol(tmp_path / "psnr.yaml")
    args = ["ablate", "--dataset", "demo", "-p", str(proto), "--limit", "1", "--runs-dir", str(tmp_path / "runs"),
            "--quiet"]
    res = CliRunner().invoke(main, [*args, "--prompts", "-m", MAGICBRUSH, "-o", "steps=1", "-o", "size=64"])
    assert res.exit_code == 0, res.output
    assert "enriched description" in res.output and "templated instruction" in res.output
    one_line_error(CliRunner().invoke(main, [*args, "-m", MAGICBRUSH]), "--prompts")


def test_ablation_run_keywords_are_the_runners_declared_once(tables, tmp_path):
    """ablate()/prompt_ablation() take the runner's keywords (RunSpec / RunOptions fields, its defaults) that
    RUN_KEYWORDS names, pass them to every row's run, and refuse any other before anything is written."""
    import inspect

    from egobench.ablate import RUN_KEYWORDS, prompt_ablation
    from egobench.errors import UserError
    from egobench.run_spec import RunOptions, RunSpec

    defaults = {f.name: f.default for r in (RunSpec, RunOptions) for f in dataclasses.fields(r)}
    for fn, own in ((ablate, ["dataset", "features_root", "compute_features", "tables"]),
                    (prompt_ablation, ["method", "dataset", "method_options", "templates"])):
        params = inspect.signature(fn).parameters
        assert list(params)[:len(own)] == own and set(list(params)[len(own):]) == set(RUN_KEYWORDS)
        assert all(params[k].default == defaults[k] for k in RUN_KEYWORDS)
    tables.add("7", {"title": "Table 7: echo", "rows": [{"label": "echo", "method": ECHO}]})
    kw = dict(protocol=_psnr_protocol(), limit=1, runs_dir=tmp_path / "runs", tables=(7,), progress=False)
    for bad in ("seed", "keep_going", "method_options", "batchsize"):  # a run keyword an ablation does not pass
        with pytest.raises(TypeError, match=f"ablate\\(\\) got an unexpected keyword argument '{bad}'"):
            ablate("demo", **kw, **{bad: 1})
    with pytest.raises(TypeError, match="prompt_ablation\\(\\) got an unexpected keyword argument 'seed'"):
        prompt_ablation(MAGICBRUSH, "demo", seed=1)
    with pytest.raises(UserError, match="--batch-size must be at least 1"):
        ablate("demo", **kw, batch_size=0)
    assert not (tmp_path / "runs").exists()
    (tmp_path / "sd15").mkdir()
    res = ablate("demo", **kw, batch_size=3, weights=(f"sd15={tmp_path / 'sd15'}",))
    assert res.out == tmp_path / "runs" / "demo" / "egobench-v1" / "ablation-limit1"
    manifest = json.loads((res.rows(7)[0][1].run_dir / "manifest.json").read_text())
    assert manifest["identity"]["overrides"] == ["sd15"]  # the weights reached the row's run
