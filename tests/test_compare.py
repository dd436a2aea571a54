"""egobench compare DIR_A DIR_B: pairing by relative path, the image-pair metrics, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import egobench
from egobench.cli import main
from egobench.compare_folders import index_folder, select_metrics
from egobench.errors import UserError
from egobench.io import read_json
from egobench.protocol import load_protocol
from tests.conftest import one_line_error

#: a cheap protocol for the CLI tests: PSNR only
PSNR_ONLY = """name: psnr-only
version: "1"
metrics:
  - name: psnr
    metric: psnr
    settings: {data_range: 1.0}
"""


def _noisy(x: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(x.astype(np.int16) + rng.integers(-30, 31, x.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A: 3 PNGs in sub/ + one only in A; B: the same 3 as noisy JPEG-named PNG-content files
    (extension differs) + one only in B."""
    root = tmp_path_factory.mktemp("cmp")
    a, b = root / "a", root / "b"
    (a / "sub").mkdir(parents=True)
    (b / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    pairs = {}
    for i in range(3):
        x = np.array(Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((64, 48)))
        y = _noisy(x, i)
        Image.fromarray(x).save(a / "sub" / f"{i}.png")
        Image.fromarray(y).save(b / "sub" / f"{i}.webp", lossless=True)
        pairs[f"sub/{i}"] = (x, y)
    Image.fromarray(x).save(a / "only-a.png")
    Image.fromarray(y).save(b / "sub" / "only-b.png")
    (b / "notes.txt").write_text("not an image")
    (root / "psnr.yaml").write_text(PSNR_ONLY)
    return a, b, pairs, root / "psnr.yaml"


def test_index_folder_pairs_by_relative_path_without_extension(folders, tmp_path):
    a, b, pairs, _ = folders
    ia, ib = index_folder(a), index_folder(b)
    assert sorted(set(ia) & set(ib)) == sorted(pairs)
    assert set(ia) - set(ib) == {"only-a"} and set(ib) - set(ia) == {"sub/only-b"}
    (tmp_path / "x.png").write_bytes((a / "sub" / "0.png").read_bytes())
    (tmp_path / "x.JPG").write_bytes(b"whatever")
    with pytest.raises(UserError, match="ambiguous pair: .*x.(png|JPG) and .*x.(png|JPG) both match 'x'"):
        index_folder(tmp_path)


def test_select_metrics_needs_only_two_images():
    proto = load_protocol("egobench-v1")
    keep, skipped = select_metrics(proto, None)
    assert keep == ["clip", "fid", "kid", "psnr", "lpips"]
    assert set(skipped) == {"egovlp", "egovlp-plus", "blip-b", "blip-l"} and "--dataset" in skipped["egovlp"]
    keep, skipped = select_metrics(proto, "ego4d")
    assert keep[0] == "egovlp" and "egovlp" not in skipped and "needs input" in skipped["egovlp-plus"]


def test_compare_scores_pairs_like_the_reference_libraries(folders, tmp_path):
    from skimage.metrics import peak_signal_noise_ratio
    from torch_fidelity import calculate_metrics

    a, b, pairs, _ = folders
    res = egobench.compare(a, b, protocol="egobench-v1", zoo="tiny", device="cpu", out=tmp_path / "r.json",
                           progress=False)
    assert list(res.metrics) == ["clip", "fid", "kid", "psnr", "lpips"]
    assert (res.n_pairs, res.only_a, res.only_b) == (3, ["only-a"], ["sub/only-b"])
    # PSNR per pair: B (generated) against A (reference)
    want = [peak_signal_noise_ratio(pairs[k][0], pairs[k][1], data_range=255) for k in sorted(pairs)]
    np.testing.assert_allclose(res.pairs["psnr"].to_numpy(), want, rtol=1e-7)  # [0, 1] float32 pixels
    assert res.metrics["psnr"]["value"] == pytest.approx(np.mean(want), rel=1e-7)
    # KID between the two sets: torch-fidelity on the paired files only (input1 = B, input2 = A)
    for side, d in (("a", a), ("b", b)):
        (tmp_path / side).mkdir()
        for k in sorted(pairs):
            (tmp_path / side / f"{k.replace('/', '_')}.png").write_bytes(
                (d / f"{k}.png").read_bytes() if side == "a" else _png(pairs[k][1]))
    from egobench.weights import WeightStore

    weights_file = WeightStore(zoo="tiny").resolve("inception-fid").file("weights-inception-2015-12-05-6726825d.pth")
    ref = calculate_metrics(input1=str(tmp_path / "b"), input2=str(tmp_path / "a"), kid=True, fid=True,
                            kid_subset_size=3, feature_extractor="inception-v3-compat",
                            feature_extractor_weights_path=str(weights_file), cuda=False, cache=False,
                            verbose=False, save_cpu_ram=True)
    assert res.metrics["kid"]["value"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-4, abs=1e-9)
    assert res.metrics["fid"]["value"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-3)
    report = read_json(tmp_path / "r.json")
    assert report["n_pairs"] == 3 and report["n_only_a"] == 1 and report["n_only_b"] == 1
    assert [p["key"] for p in report["pairs"]] == sorted(pairs) and report["zoo"] == "tiny"
    assert "egovlp" in report["skipped"]


def _png(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _invoke(*args):
    return CliRunner().invoke(main, [str(x) for x in args])


def test_compare_cli_counts_unmatched_and_writes_report(folders, tmp_path):
    a, b, pairs, proto = folders
    r = _invoke("compare", a, b, "-p", proto, "--zoo", "tiny", "--quiet", "--out", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    assert f"3 matched pair(s); unmatched: 1 only in {a}, 1 only in {b}" in r.output
    assert "psnr ↑" in r.output and "NOT COMPARABLE" not in r.output  # PSNR loads no weights
    rep = read_json(tmp_path / "r.json")
    assert list(rep["metrics"]) == ["psnr"] and rep["metrics"]["psnr"]["n"] == 3
    # identical folders: PSNR inf survives as plain JSON
    r = _invoke("compare", a, a, "-p", proto, "--quiet", "--out", tmp_path / "same.json")
    assert r.exit_code == 0, r.output
    assert read_json(tmp_path / "same.json")["metrics"]["psnr"]["value"] == "inf"


def test_compare_cli_errors_are_one_line(folders, tmp_path):
    a, b, _, proto = folders
    one_line_error(_invoke("compare", a, tmp_path / "nope", "-p", proto), "nope", "does not exist")
    (tmp_path / "amb").mkdir()
    (tmp_path / "amb" / "sub").mkdir()
    for ext in ("png", "jpg"):
        (tmp_path / "amb" / "sub" / f"0.{ext}").write_bytes((a / "sub" / "0.png").read_bytes())
    one_line_error(_invoke("compare", a, tmp_path / "amb", "-p", proto), "ambiguous pair", "0.png", "0.jpg")
    (tmp_path / "other").mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "other" / "zzz.png")
    one_line_error(_invoke("compare", a, tmp_path / "other", "-p", proto), "no image pairs")
    (tmp_path / "bad" / "sub").mkdir(parents=True)
    (tmp_path / "bad" / "sub" / "0.png").write_bytes(b"not a png")
    one_line_error(_invoke("compare", tmp_path / "bad", b, "-p", proto), "0.png")
