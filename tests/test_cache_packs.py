"""The feature / run cache: append-only packs, one per writing process and namespace."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np

from egobench.metrics.cache import PACK_SUFFIX, FeatureCache, encode_record


def _packs(root: Path) -> list[Path]:
    return sorted(root.rglob(f"*{PACK_SUFFIX}"))


def test_values_round_trip_and_a_thousand_keys_make_one_file(tmp_path):
    c = FeatureCache(tmp_path)
    calls = []
    keys = [f"{i:064x}" for i in range(1000)]
    out = c.get_or_compute("ns", keys, lambda idx: calls.append(len(idx)) or [np.full(3, i, np.float32) for i in idx])
    assert calls == [1000] and out[7].tolist() == [7, 7, 7]
    again = c.get_or_compute("ns", keys, lambda idx: calls.append(len(idx)) or [])
    assert calls == [1000] and again[999].tolist() == [999, 999, 999]
    assert len(_packs(tmp_path)) == 1 and len(list(tmp_path.rglob("*"))) == 2  # the namespace folder, one pack
    # another process (a new cache object) reads every value without computing
    other = FeatureCache(tmp_path)
    got = other.get_or_compute("ns", keys, lambda idx: calls.append(len(idx)) or [])
    assert calls == [1000] and got[500].dtype == np.float32 and got[500].tolist() == [500, 500, 500]
    assert (other.hits, other.misses) == (1000, 0)


def test_a_record_cut_short_by_a_kill_is_ignored_and_recomputed(tmp_path):
    c = FeatureCache(tmp_path)
    c.put("ns", "a" * 64, np.arange(4.0))
    c.close()
    pack = _packs(tmp_path)[0]
    record = encode_record("b" * 64, np.ones(8))
    with open(pack, "ab") as f:
        f.write(record[: len(record) // 2])  # killed mid-write
    fresh = FeatureCache(tmp_path)
    assert np.array_equal(fresh.get("ns", "a" * 64), np.arange(4.0))
    assert fresh.get("ns", "b" * 64) is None
    out = fresh.get_or_compute("ns", ["b" * 64], lambda idx: [np.zeros(2)])
    assert out[0].tolist() == [0, 0]
    assert FeatureCache(tmp_path).get("ns", "b" * 64).tolist() == [0, 0]


def test_a_damaged_record_fails_its_checksum_and_is_recomputed(tmp_path):
    c = FeatureCache(tmp_path)
    c.put("ns", "k" * 64, np.arange(16.0))
    c.close()
    pack = _packs(tmp_path)[0]
    data = bytearray(pack.read_bytes())
    data[-20] ^= 0xFF  # a flipped bit in the value
    pack.write_bytes(bytes(data))
    calls = []
    fresh = FeatureCache(tmp_path)
    out = fresh.get_or_compute("ns", ["k" * 64], lambda idx: calls.append(idx) or [np.ones(4)])
    assert calls == [[0]] and out[0].tolist() == [1, 1, 1, 1]
    assert FeatureCache(tmp_path).get("ns", "k" * 64).tolist() == [1, 1, 1, 1]


def test_entries_of_the_per_key_layout_are_still_read(tmp_path):
    legacy = tmp_path / "ns" / "ab" / f"{'ab' * 32}.npy"
    legacy.parent.mkdir(parents=True)
    np.save(legacy, np.array([1.5, 2.5]))
    calls = []
    out = FeatureCache(tmp_path).get_or_compute("ns", ["ab" * 32], lambda idx: calls.append(idx) or [])
    assert calls == [] and out[0].tolist() == [1.5, 2.5]


def _writer(root: str, start: int) -> None:
    c = FeatureCache(root)
    # overlapping keys: both processes compute 50..99
    c.get_or_compute("ns", [f"{i:064x}" for i in range(start, start + 100)],
                     lambda idx: [np.full(5, start + i, np.int64) for i in idx])
    c.close()


def test_two_processes_write_one_namespace_without_corrupting_it(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), s)) for s in (0, 50)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert len(_packs(tmp_path)) == 2
    c = FeatureCache(tmp_path)
    out = c.get_or_compute("ns", [f"{i:064x}" for i in range(150)], lambda idx: [])
    assert [int(v[0]) for v in out] == list(range(150)) and c.misses == 0
