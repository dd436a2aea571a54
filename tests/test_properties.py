"""Property-based tests: parsers either parse or raise a one-line DataError, never anything else."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egobench.data.lego_release import load_release
from egobench.data.prepare import epic_pair_frames, read_epic_csv
from egobench.errors import DataError, UserError

FIXTURE = Path(__file__).parent / "fixtures" / "epic100_validation_excerpt.csv"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_subnormal=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@SETTINGS
@given(doc=st.dictionaries(st.text(max_size=10), json_values, max_size=3))
def test_release_reader_on_arbitrary_json(tmp_path_factory, doc):
    root = tmp_path_factory.mktemp("rel")
    (root / "EgoGen" / "epickitchen" / "val").mkdir(parents=True)
    (root / "epickitchen_val.json").write_text(json.dumps(doc))
    # no frame exists under this root, so no document can load: every outcome is a one-line user error
    with pytest.raises(UserError) as e:
        load_release(root, "epickitchens")
    assert "\n" not in str(e.value)


entry = st.fixed_dictionaries(
    {"image_0": st.text(min_size=1, max_size=12), "image_1": st.text(min_size=1, max_size=12),
     "action": st.text(min_size=1, max_size=20)},
    optional={"llava_forecast_finetune": st.text(max_size=30) | st.none()},
)


@SETTINGS
@given(data=st.dictionaries(st.text(min_size=1, max_size=8),
                            st.dictionaries(st.text(min_size=1, max_size=8), entry, min_size=1, max_size=2),
                            min_size=1, max_size=3))
def test_release_reader_on_well_shaped_entries_with_odd_strings(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("rel")
    (root / "EgoGen" / "ego4d.fho" / "val").mkdir(parents=True)
    (root / "ego4d_val.json").write_text(json.dumps(data))
    with pytest.raises(UserError) as e:  # no frames exist, so it can never load
        load_release(root, "ego4d")
    assert "\n" not in str(e.value)


def _rows():
    with open(FIXTURE, newline="") as f:
        return list(csv.reader(f))


@SETTINGS
@given(row=st.integers(1, 30), col=st.integers(0, 14), value=st.text(max_size=12))
def test_epic_csv_with_one_mutated_cell(tmp_path_factory, row, col, value):
    rows = _rows()
    rows[row][col] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    p = tmp_path_factory.mktemp("csv") / "x.csv"
    p.write_text(buf.getvalue())
    try:
        parsed = read_epic_csv(p)
    except DataError as e:
        msg = str(e)
        assert "\n" not in msg and str(p) in msg
        return
    assert len(parsed) == 30


@SETTINGS
@given(start=st.integers(1, 10**6), dur=st.integers(0, 10**5), ext=st.booleans())
def test_epic_pair_rule(start, dur, ext):
    video = "P01_101" if ext else "P01_01"
    fps = 50 if ext else 60
    inp, tgt = epic_pair_frames(video, start, start + dur)
    assert start - inp == int(0.25 * fps + 0.5)
    assert tgt - start == int(0.6 * dur + 0.5)
    assert inp < tgt or dur == 0
