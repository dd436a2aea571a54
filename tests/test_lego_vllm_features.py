"""VLLM features computed by egobench feed the LEGO method like the released dumps."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
from click.testing import CliRunner

import egobench
from egobench.cli import main
from egobench.protocol import load_protocol
from lego.features import load_features
from lego.lemmatize import backend
from lego.method import RELEASED_TAGS
from lego.vllm_features import RECORDS
from lego.vllm_prompt import action_phrase


def test_vllm_features_command_then_lego_reads_them(tmp_path):
    feat = tmp_path / "feat"
    r = CliRunner().invoke(main, ["vllm-features", "--dataset", "demo", "--out", str(feat), "--limit", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "computed features for 2 sample(s)" in r.output
    split = egobench.load_split("demo", limit=2)
    for s in split:
        f = load_features(feat, s, RELEASED_TAGS[s.meta["domain"]])
        assert f.image.ndim == 2 and f.text.ndim == 2 and np.isfinite(f.text).all()
        assert f.description  # the generated description is kept beside the features
    # one record per computed sample: the action phrase of its prompt and the lemmatizer that made it
    records = {r["sample"]: r for r in map(json.loads, (feat / RECORDS).read_text().splitlines())}
    assert set(records) == {s.id for s in split}
    for s in split:
        r = records[s.id]
        assert r["model_tag"] == RELEASED_TAGS[s.meta["domain"]] and r["action"] == s.action and r["seed"] == 42
        want = backend() if s.meta["domain"] == "ego4d" else "none"
        assert r["lemmatizer"] == want and r["action_phrase"] == action_phrase(s.action, s.meta["domain"])
    again = CliRunner().invoke(main, ["vllm-features", "--dataset", "demo", "--out", str(feat), "--limit", "2",
                                      "--quiet"])
    assert "computed features for 0 sample(s); 2 already present" in again.output
    proto = load_protocol("egobench-v1")
    proto = dataclasses.replace(proto, generation=dataclasses.replace(proto.generation, steps=2))
    res = egobench.run("lego", "demo", protocol=proto, limit=2, out=tmp_path / "run", progress=False,
                       method_options={"features_root": str(feat)})
    assert res.generated == 2
    assert all(math.isfinite(v["value"]) for k, v in res.metrics.items() if k != "fid")
