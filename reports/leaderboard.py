"""A static leaderboard site from results bundles and run folders.

``egobench leaderboard BUNDLE_OR_RUN... --out site/`` writes one self-contained ``index.html``
(inline CSS and JS, no server, no CDN: it works from ``file://`` and any static host) plus the
gallery images and each row's provenance file:

* one sortable table per dataset and protocol, each value with its 95% interval (the bundle's
  bootstrap interval; recomputed in the page, same method, for a verb/noun filter);
* the LEGO paper's published rows (``published.yaml``) marked "published": inside the table of the
  paper's protocol on its datasets, else as a reference table of their own;
* zero-shot / finetuned marks, verb and noun filters (per-sample values: ``--per-sample`` bundles or
  run folders), a gallery of the same samples side by side for the methods ticked;
* per-row links to ``provenance/<row>.json``: the result without per-sample values (method,
  protocol, split, weights, package versions) and the file it came from.

Bundles come from other people: every string reaches the page as JSON data with ``<``, ``>`` and
``&`` escaped and is put in the DOM as text, never markup; a method's URL becomes a link only when
it is http(s); images are re-encoded (decoded with egobench's bomb checks) under names made from
sample ids, never from paths in a bundle. A Content-Security-Policy with a per-build nonce lets
only the page's own script run.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import jinja2
from markupsafe import Markup

from egobench.errors import UserError
from egobench.images import BadImageError, open_rgb
from egobench.io import atomic_open, atomic_write_text, safe_component, truncate
from egobench.provenance import footer
from egobench.results_bundle import (
    Bundle,
    as_float,
    image_name,
    known_protocols,
    load_bundle,
    read_run,
    replace_folder,
    result_from_run,
    result_ids,
)

MARKER = ".egobench-leaderboard"
#: gallery samples per dataset (those with images from the most rows first)
GALLERY_SAMPLES = 24
#: longest side of a gallery image in the site
IMAGE_SIDE = 512
@dataclass
class Entry:
    """One measured row: a bundle result (or a run folder read as one) and where its images are."""

    result: dict[str, Any]
    origin: str  # the file or folder given on the command line
    images: dict[str, Path] = field(default_factory=dict)  # sample id -> image file to re-encode
    row_id: str = ""


def safe_url(url: Any) -> str | None:
    """An http(s) URL without credentials or control characters, else None (``javascript:``,
    ``data:`` and relative URLs never become links)."""
    if not isinstance(url, str) or len(url) > 2000 or any(ord(c) < 33 or c in "\"'<>\\`" for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return url


def load_inputs(paths: list[str]) -> list[Entry]:
    """Entries from bundle folders / results.json files and run folders (metrics.json)."""
    entries: list[Entry] = []
    for given in paths:
        p = Path(given)
        if (p / "metrics.json").is_file():
            run = read_run(p)
            res = result_from_run(run, result_ids([run])[0], per_sample=True)
            imgs = {}
            if "output" in run.samples.columns:
                for rec in run.samples[["sample_id", "output", "status"]].to_dict("records"):
                    out = rec.get("output")
                    if rec.get("status", "ok") == "ok" and isinstance(out, str) and out:
                        q = Path(out)
                        imgs[str(rec["sample_id"])] = q if q.is_absolute() else p / q
            entries.append(Entry(res, str(p), imgs))
        elif p.is_dir() and not (p / "results.json").is_file():
            raise UserError(f"{p}: neither a results bundle (results.json) nor a run folder (metrics.json)")
        else:
            b = load_bundle(p)
            for r in b.results:
                entries.append(Entry(r, str(b.path), _bundle_images(b, r)))
    if not entries:
        raise UserError("give at least one results bundle or run folder")
    return entries


def _identity(r: dict[str, Any]) -> str:
    """What makes two results the same row: method, data, protocol, run and values."""
    return json.dumps([r["method"]["name"], r["dataset"], r["protocol"]["hash"], r["split"]["fingerprint"],
                       r["source"]["run_id"], {k: m["value"] for k, m in r["metrics"].items()}], sort_keys=True)


def dedupe(entries: list[Entry]) -> tuple[list[Entry], list[str]]:
    """The entries with each result once (a run given both as a folder and inside a bundle), and
    a note per entry left out."""
    seen: dict[str, Entry] = {}
    notes = []
    for e in entries:
        key = _identity(e.result)
        if key in seen:
            notes.append(f"{truncate(e.origin, 100)}: {truncate(e.result['method']['name'], 60)} is the same result "
                         f"as in {truncate(seen[key].origin, 100)}; shown once")
            if e.images and not seen[key].images:
                seen[key].images = e.images
            continue
        seen[key] = e
    return list(seen.values()), notes


def _bundle_images(b: Bundle, r: dict[str, Any]) -> dict[str, Path]:
    out = {}
    for s in r.get("samples") or []:
        if "image" in s:
            f = b.image(s["image"])
            if f is not None:
                out[s["sample_id"]] = f
    return out


# --- model of the page --------------------------------------------------------------------------


def _display(v: Any, scale: float) -> float | str | None:
    f = as_float(v)
    if f is None or math.isnan(f):
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return round(f * scale, 10)


def _marks(r: dict[str, Any]) -> list[str]:
    m = r["method"]
    marks = {"zero-shot": ["zero-shot"], "finetuned": ["finetuned"]}.get(m["training"], [])
    if m.get("vllm_finetuned") is True:
        marks.append("VLLM finetuned")
    elif m.get("vllm_finetuned") is False:
        marks.append("VLLM w/o finetuning")
    if r["source"]["kind"] == "evaluate":
        marks.append("outside images")
    if not r["comparable"]:
        marks.append("not comparable")
    return marks


def _weights_line(r: dict[str, Any]) -> str:
    lock = (r["weights"].get("lock") or {}).get("digest")
    return footer(r["weights"]["artifacts"], lock[:12] if lock else None)


def build_site_data(entries: list[Entry], known: dict[str, Any]) -> dict[str, Any]:
    """The JSON the page renders: tables (rows, cells, per-sample values) and galleries."""
    from . import published as pub
    from .tables import DATASET_NAMES, LABELS

    labels = LABELS
    groups: dict[tuple[str, str], list[Entry]] = {}
    for i, e in enumerate(entries, 1):
        e.row_id = f"r{i}"
        groups.setdefault((e.result["dataset"], e.result["protocol"]["hash"]), []).append(e)
    tables = []
    paper_proto = pub.published()["protocol"]
    with_paper: set[str] = set()
    for t_no, ((ds, phash), group) in enumerate(groups.items(), 1):
        proto = group[0].result["protocol"]
        order: list[str] = []
        for e in group:
            order += [k for k in e.result["metric_order"] if k not in order]
            order += [k for k in e.result["metrics"] if k not in order]
        paper = proto["name"] == paper_proto and ds not in with_paper and phash in known
        pub_rows = _published_rows(ds) if paper else []
        if pub_rows:
            with_paper.add(ds)
        for k in (k for _, _, vals in pub_rows for k in vals):
            if k not in order:
                order.append(k)
        columns = []
        for k in order:
            info = next((e.result["metrics"][k] for e in group if k in e.result["metrics"]), None)
            higher = bool(info["higher_is_better"]) if info else k not in ("fid", "lpips")
            columns.append({"key": k, "label": labels.get(k, k), "higher": higher,
                            "set": bool(info and info["kind"] == "set"),
                            "scale": float(info["display_scale"]) if info else (1.0 if k in ("psnr", "fid") else 100.0)})
        samples, index = _table_samples(group)
        rows, values = [], {}
        for e in group:
            rows.append(_row(e))
            values[e.row_id] = _row_values(e, index, len(samples))
        for label, method, vals in pub_rows:
            rows.append({"id": f"p{t_no}-{safe_component(method, 'method')}", "label": label, "method": method,
                         "kind": "published", "marks": ["published"], "n": None, "prov": None, "url": None,
                         "weights": "", "cells": {k: {"d": v, "lo": None, "hi": None} for k, v in vals.items()}})
        scaled = [f"{c['label']} x{c['scale']:g}" for c in columns if c["scale"] != 1.0]
        notes = ["Brackets: 95% interval of the mean, percentile bootstrap over each row's scored samples "
                 "(1000 resamples; recomputed the same way for a verb / noun filter). "
                 + (", ".join(scaled) + "; " if scaled else "") + "\u2193 lower is better; best measured value in bold."]
        if pub_rows:
            notes.append(f"Rows marked published: {pub.published()['source']}; not re-measured.")
        if phash not in known:
            notes.append("This protocol hash is not a shipped protocol's (custom settings).")
        tables.append({"id": f"t{t_no}", "dataset": ds, "dataset_name": DATASET_NAMES.get(ds, ds),
                       "protocol": proto, "known": phash in known, "columns": columns, "rows": rows,
                       "samples": samples, "values": values, "notes": notes,
                       "weights": sorted({_weights_line(e.result) for e in group})})
    for ds in ("ego4d", "epickitchens"):
        if ds in with_paper:
            continue
        pub_rows = _published_rows(ds)
        if not pub_rows:
            continue
        keys = list(dict.fromkeys(k for _, _, vals in pub_rows for k in vals))
        t_no = len(tables) + 1
        tables.append({
            "id": f"t{t_no}", "dataset": ds, "dataset_name": DATASET_NAMES.get(ds, ds),
            "protocol": {"name": paper_proto, "version": "paper", "hash": ""}, "known": True,
            "columns": [{"key": k, "label": labels.get(k, k), "higher": k not in ("fid", "lpips"), "set": k == "fid"}
                        for k in keys],
            "rows": [{"id": f"p{t_no}-{safe_component(m, 'method')}", "label": lab, "method": m, "kind": "published",
                      "marks": ["published"], "n": None, "prov": None, "url": None, "weights": "",
                      "cells": {k: {"d": v, "lo": None, "hi": None} for k, v in vals.items()}}
                     for lab, m, vals in pub_rows],
            "samples": [], "values": {}, "weights": [],
            "notes": [f"Published reference only ({pub.published()['source']}): no bundle here was made on "
                      f"{DATASET_NAMES.get(ds, ds)} under {paper_proto}."]})
    return {"tables": tables}


def _published_rows(ds: str) -> list[tuple[str, str, dict[str, float]]]:
    from . import published as pub

    rows: dict[str, dict[str, float]] = {}
    for no in (1, 2):
        keys, vals = pub.values(no, ds)
        for method, vs in vals.items():
            rows.setdefault(method, {}).update({k: float(v) for k, v in zip(keys, vs)})
    return [(f"{pub.METHOD_NAMES.get(m, m)} (published)", m, v) for m, v in rows.items()]


def _table_samples(group: list[Entry]) -> tuple[list[dict[str, str]], dict[str, int]]:
    samples: list[dict[str, str]] = []
    index: dict[str, int] = {}
    for e in group:
        for s in e.result.get("samples") or []:
            sid = s["sample_id"]
            if sid not in index:
                index[sid] = len(samples)
                samples.append({"id": sid, "verb": s.get("verb", ""), "noun": s.get("noun", ""),
                                "action": s.get("action", "")})
    return samples, index


def _row(e: Entry) -> dict[str, Any]:
    r = e.result
    cells = {}
    for k, m in r["metrics"].items():
        sc = float(m["display_scale"])
        iv = m.get("interval")
        cells[k] = {"d": _display(m["value"], sc), "lo": _display(iv["low"], sc) if iv else None,
                    "hi": _display(iv["high"], sc) if iv else None}
    return {"id": e.row_id, "label": r["method"]["name"], "method": r["method"]["name"], "kind": "measured",
            "marks": _marks(r), "n": r["n_scored"], "prov": f"provenance/{e.row_id}.json",
            "url": safe_url(r["method"].get("url")), "weights": _weights_line(r), "cells": cells,
            "per_sample": bool(r.get("samples"))}


def _row_values(e: Entry, index: dict[str, int], n: int) -> dict[str, list[Any]]:
    r = e.result
    out: dict[str, list[Any]] = {}
    for k, m in r["metrics"].items():
        if m["kind"] != "sample" or not r.get("samples"):
            continue
        col: list[Any] = [None] * n
        sc = float(m["display_scale"])
        for s in r["samples"]:
            if s["status"] == "ok" and k in s["values"]:
                col[index[s["sample_id"]]] = _display(s["values"][k], sc)
        out[k] = col
    return out


def _galleries(entries: list[Entry], site: Path, per_dataset: int) -> list[dict[str, Any]]:
    """Per dataset: the samples with images from the most rows (at most ``per_dataset``), each
    row's images re-encoded into ``site/img/<row>/``."""
    out = []
    by_ds: dict[str, list[Entry]] = {}
    for e in entries:
        if e.images:
            by_ds.setdefault(e.result["dataset"], []).append(e)
    for ds, group in by_ds.items():
        count: dict[str, int] = {}
        for e in group:
            for sid in e.images:
                count[sid] = count.get(sid, 0) + 1
        chosen = sorted(count, key=lambda s: (-count[s], s))[:per_dataset]
        info: dict[str, dict[str, Any]] = {}
        for e in group:
            for s in e.result.get("samples") or []:
                if s["sample_id"] in chosen and s["sample_id"] not in info:
                    info[s["sample_id"]] = {"id": s["sample_id"], "verb": s.get("verb", ""),
                                            "noun": s.get("noun", ""), "action": s.get("action", "")}
        for sid in chosen:
            info.setdefault(sid, {"id": sid, "verb": "", "noun": "", "action": ""})
        methods, images = [], {}
        for e in group:
            got = {}
            for i, sid in enumerate(chosen):
                src = e.images.get(sid)
                if src is not None:
                    rel = _reencode(src, site / "img" / e.row_id, sid)
                    if rel:
                        got[str(i)] = f"img/{e.row_id}/{rel}"
            if got:
                images[e.row_id] = got
                methods.append({"row": e.row_id, "label": e.result["method"]["name"], "marks": _marks(e.result)})
        if methods:
            out.append({"dataset": ds, "samples": [info[s] for s in chosen], "methods": methods, "images": images})
    return out


def _reencode(src: Path, folder: Path, sample_id: str) -> str | None:
    """Decode ``src`` (bomb-checked) and write it as a JPEG under a name made from the sample id."""
    from PIL import Image

    try:
        im = open_rgb(src)
    except BadImageError:
        return None
    scale = min(1.0, IMAGE_SIDE / max(im.width, im.height))
    if scale < 1.0:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.Resampling.BICUBIC)
    name = image_name(sample_id, "jpg")
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_open(folder / name, "wb") as f:
        im.save(f, format="JPEG", quality=90)
    return name


def _provenance(e: Entry) -> dict[str, Any]:
    r = {k: v for k, v in e.result.items() if k != "samples"}
    return {"row": e.row_id, "from": os.path.basename(e.origin.rstrip("/")) or e.origin,
            "per_sample_values": bool(e.result.get("samples")), "result": r}


def script_json(obj: Any) -> str:
    """JSON safe inside a ``<script type="application/json">`` element: no ``<``, ``>`` or ``&``
    (so no ``</script>`` or comment can end the element), everything outside ASCII escaped."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"),
                              autoescape=jinja2.select_autoescape(["html", "j2"]),
                              undefined=jinja2.StrictUndefined)


def write_site(inputs: list[str], out: str | os.PathLike, *, title: str = "egobench leaderboard",
               gallery_samples: int = GALLERY_SAMPLES, protocols: tuple[str, ...] = ()) -> Path:
    """Write the site into ``out`` (swapped in whole); the path of its index.html."""
    entries, skipped = dedupe(load_inputs(list(inputs)))
    for line in skipped:
        click.echo(f"egobench: {line}", err=True)
    known = known_protocols(protocols)
    out = Path(out)

    def build(tmp: Path) -> None:
        data = build_site_data(entries, known)
        data["galleries"] = _galleries(entries, tmp, gallery_samples)
        data["title"] = title
        for e in entries:
            atomic_write_text(tmp / "provenance" / f"{e.row_id}.json",
                              json.dumps(_provenance(e), indent=1, ensure_ascii=False) + "\n")
        nonce = secrets.token_urlsafe(16)
        html = _env().get_template("leaderboard.html.j2").render(
            title=title, nonce=nonce, data_json=Markup(script_json(data)))
        atomic_write_text(tmp / "index.html", html)

    replace_folder(out, build, MARKER, "leaderboard site")
    return out / "index.html"


@click.command("leaderboard")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", required=True, help="site folder to write (index.html, img/, provenance/)")
@click.option("--title", default="egobench leaderboard", show_default=True)
@click.option("--gallery-samples", type=click.IntRange(0), default=GALLERY_SAMPLES, show_default=True,
              help="samples per dataset in the gallery")
@click.option("--protocol", "protocols", multiple=True, metavar="FILE",
              help="a custom protocol YAML whose hash counts as known (repeatable)")
def leaderboard_cmd(inputs: tuple[str, ...], out: str, title: str, gallery_samples: int,
                    protocols: tuple[str, ...]) -> None:
    """A static leaderboard site (no server) from results bundles and run folders."""
    page = write_site(list(inputs), out, title=truncate(title, 200), gallery_samples=gallery_samples,
                      protocols=protocols)
    click.echo(f"written: {page} (open it in a browser; the folder can be copied to any static host)")
