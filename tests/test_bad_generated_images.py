"""Hostile or odd generated images in an evaluated folder (issue 13 item 5 and "also cover"):
a decompression bomb, an animated WebP, a truncated JPEG are bad *samples* (recorded with their
reason), never a traceback that aborts the evaluation; an ICC-profile image is scored; a TIFF
or GIF is not an accepted extension and is counted as a non-image file."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from egobench.cli import main
from egobench.images import MAX_PIXELS, BadImageError, read_rgb
from tests.conftest import bomb_png, write_protocol


def test_bomb_is_refused_from_the_header(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(bomb_png())
    assert p.stat().st_size < 100_000 and 30000 * 30000 > MAX_PIXELS
    with pytest.raises(BadImageError, match=r"bomb.png: image declares .*not decoded \(possible decompression bomb\)"):
        read_rgb(p)
    # just over the limit: PIL would only warn; egobench's own check refuses it from the header
    p2 = tmp_path / "over.png"
    p2.write_bytes(bomb_png(8193, 8192))
    with pytest.raises(BadImageError, match=r"over.png: image declares 8193x8192 pixels"):
        read_rgb(p2)


def test_evaluate_records_bad_images_per_sample(tmp_path):
    proto = write_protocol(tmp_path / "p.yaml", ["psnr"], name="psnr-only")
    runner = CliRunner()
    r = runner.invoke(main, ["run", "-m", "input-copy", "-d", "demo", "-p", str(proto), "--limit", "6",
                             "--out", str(tmp_path / "run"), "--quiet"])
    assert r.exit_code == 0, r.output
    imgs = tmp_path / "imgs"
    shutil.copytree(tmp_path / "run" / "images", imgs)
    files = sorted(imgs.glob("*.png"))
    ids = [f.stem for f in files]
    # 0: decompression bomb
    files[0].write_bytes(bomb_png())
    # 1: animated WebP under the sample's name
    frame = Image.open(files[1]).convert("RGB")
    files[1].unlink()
    frame.save(imgs / f"{ids[1]}.webp", save_all=True, append_images=[frame.rotate(90)], duration=100, loop=0)
    # 2: truncated JPEG
    buf = io.BytesIO()
    Image.open(files[2]).convert("RGB").save(buf, "JPEG", quality=95)
    files[2].unlink()
    (imgs / f"{ids[2]}.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    # 3: an ICC profile (sRGB from PIL's ImageCms when present, else an opaque blob): scored
    im = Image.open(files[3]).convert("RGB")
    try:
        from PIL import ImageCms

        icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except Exception:  # noqa: BLE001 - littlecms not built in: any bytes exercise the path
        icc = b"\x00" * 128
    im.save(files[3], icc_profile=icc)
    # a multi-frame TIFF and a GIF beside them: not accepted extensions
    frame.save(imgs / "stack.tiff", save_all=True, append_images=[frame])
    frame.save(imgs / "anim.gif", save_all=True, append_images=[frame.rotate(90)])

    r = runner.invoke(main, ["evaluate", "--images", str(imgs), "-d", "demo", "-p", str(proto), "--limit", "6",
                             "--out", str(tmp_path / "ev"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output and "2 non-image file(s)" in r.output
    df = pd.read_parquet(tmp_path / "ev" / "samples.parquet").set_index("sample_id")
    assert df.loc[ids[0], "status"] == "failed" and "decompression bomb" in df.loc[ids[0], "error"]
    assert df.loc[ids[1], "status"] == "failed" and "2 frames" in df.loc[ids[1], "error"]
    assert df.loc[ids[2], "status"] == "failed" and "cannot decode" in df.loc[ids[2], "error"]
    assert df.loc[ids[3], "status"] == "ok"
    assert (df["status"] == "ok").sum() == 3
    assert "3 failed" in r.output or "failed 3" in r.output
    assert Path(tmp_path / "ev" / "metrics.json").is_file()
