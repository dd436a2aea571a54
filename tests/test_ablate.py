"""`egobench ablate` on the demo split with the tiny zoo."""

from __future__ import annotations

import dataclasses
import json

from egobench.ablate import ablate
from egobench.protocol import load_protocol


def _fast_protocol():
    p = load_protocol("egobench-v1")
    return dataclasses.replace(
        p, generation=dataclasses.replace(p.generation, steps=2),
        metrics=tuple(m for m in p.metrics if m.name in ("psnr", "lpips", "clip")),
    )


def test_table4_runs_both_vllm_variants_and_is_resumable(tmp_path):
    res = ablate("demo", protocol=_fast_protocol(), limit=3, runs_dir=tmp_path / "runs", tables=(4,),
                 progress=False)
    assert [label for label, _ in res.table4] == ["w/o finetuning", "w/ finetuning"]
    a, b = (r for _, r in res.table4)
    assert a.run_dir != b.run_dir
    md = (res.out / "tables.md").read_text()
    assert "Table 4" in md and "w/o finetuning" in md and "NOT COMPARABLE" in md
    saved = json.loads((res.out / "tables.json").read_text())
    assert len(saved["table4"]) == 2
    again = ablate("demo", protocol=_fast_protocol(), limit=3, runs_dir=tmp_path / "runs", tables=(4,),
                   progress=False)
    assert all(r.generated == 0 for _, r in again.table4)  # resumed: nothing regenerated


def test_table3_fills_every_conditioning_row(tmp_path):
    res = ablate("demo", protocol=_fast_protocol(), limit=2, runs_dir=tmp_path / "runs", tables=(3,),
                 progress=False)
    assert [label for label, _ in res.table3] == [
        "Action labels", "Descriptions", "Descriptions + image emb.", "Descriptions + text emb.",
        "Descriptions + joint emb."]
    assert [r.run_dir.parts[-2] for _, r in res.table3] == ["ip2p", "lego-desc", "lego-img", "lego-txt", "lego"]
    for _, r in res.table3:
        assert r.metrics["psnr"]["value"] is not None
    assert "Table 3" in (res.out / "tables.md").read_text()
