"""Crowd studies on Amazon Mechanical Turk: export a batch, import the results.

Two studies, as in the LEGO paper (Sec. 4, user study):

* ``action`` -- raters see the input frame, the action label and one generated
  frame per method (shuffled per item) and pick the one that best aligns with
  the action while preserving the most context of the input frame. The win
  rate of a method is its share of the judgments.
* ``description`` -- raters see the input and target frames and an enriched
  action description and answer whether the description aligns with them
  (yes / no). The rate is the share of "yes" per description source (run).

``export_amt`` writes::

    DIR/upload/batch.csv     the batch file (one row per item, one column per ${...} variable)
    DIR/upload/task.html     the layout (crowd-html-elements) to paste into the requester site
    DIR/upload/images/       every shown image under an opaque random name (host these at
                             --image-base-url; batch.csv holds <base>/<name>)
    DIR/private/key.json     which method/run sits behind each candidate slot, the
                             attention-check answers and the study parameters
                             (stays with the requester: never upload it)
    DIR/preview.html         the layout rendered locally with the first items' values
                             (plain radio inputs stand in for crowd-html-elements)
    DIR/README.txt           these instructions

Nothing under ``upload/`` names a method or a run, or tells one apart by its
file: item ids and image names come from a seeded RNG, and every image of an
item (input frame, candidates, attention-check frames) is re-encoded the same
way (see :data:`IMAGE_RESAMPLE`): resized to one common size per item (the
input frame's size, its long side capped at :data:`MAX_IMAGE_SIDE`) with the
LANCZOS filter, 8-bit RGB PNG at one fixed compression level, with no metadata
chunks (no EXIF, ICC profile, text, gamma or DPI). A method that renders at
512x512 and one that renders at 341x256 are shown at the same size.

Every batch/result CSV cell passes through :func:`egobench.io.csv_cell` (a
cell beginning with ``= + - @``, tab or CR gets a leading apostrophe, so a
spreadsheet does not run it). The export is built in a hidden folder beside
``DIR`` and renamed into place at the end (``import_amt`` likewise), so a run
killed at any point leaves either no ``DIR`` or the previous complete one, and
a rerun writes the same files.

``import_amt`` reads the requester site's results CSV (``HITId``, ``WorkerId``,
``AssignmentStatus``, ``Input.<variable>``, ``Answer.<field>``...), maps every
answer back through the key and writes win rates with bootstrap intervals,
Fleiss' kappa, per-rater statistics and a bar chart.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import glob
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, UserError
from .io import atomic_write_bytes, atomic_write_json, atomic_write_text, csv_row, loads_strict, read_json, truncate
from .run_folder import read_run_folder

STUDIES = ("action", "description")
KEY_VERSION = 1
ACTION_QUESTION = (
    "Which image best shows the action being performed while preserving the most context of the input frame?"
)
DESCRIPTION_QUESTION = "Does the description align with the input frame and the action frame?"
#: Filter used to bring every image of an item to the item's common size.
IMAGE_RESAMPLE = "LANCZOS"
#: Longest side (pixels) of an uploaded image; larger input frames are scaled down (aspect kept).
MAX_IMAGE_SIDE = 1024
#: zlib level of every uploaded PNG (one encoder setting for all images).
PNG_COMPRESS_LEVEL = 6


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
@dataclass
class StudyRun:
    path: Path
    label: str
    method: str
    dataset: str
    fingerprint: str
    samples: Any  # pandas DataFrame indexed by sample_id


_RUN_COLUMNS = ("sample_id", "domain", "clip_id", "action", "input_path", "target_path", "status", "output")


def _load_run(path: Path, study: str = "action") -> StudyRun:
    """The run folder at ``path`` (:func:`~egobench.run_folder.read_run_folder`), with what a study needs:
    per-sample rows with the study's columns, one per sample."""
    path = Path(path)
    if not (path / "metrics.json").is_file() or not (path / "samples.parquet").is_file():
        raise UserError(f"{path}: not a run directory (needs metrics.json and samples.parquet)")
    run = read_run_folder(path)
    m, df = run.metrics, run.samples
    for k in ("method", "dataset"):
        if not isinstance(m.get(k), str) or not m.get(k):
            raise DataError(f"{path / 'metrics.json'}: no '{k}' string; not a run made by egobench")
    need = _RUN_COLUMNS + (("description",) if study == "description" else ())
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise DataError(f"{path / 'samples.parquet'}: missing column(s) {', '.join(missing)}; "
                        "not a run made by egobench")
    if df["sample_id"].duplicated().any():
        dup = df["sample_id"][df["sample_id"].duplicated()].iloc[0]
        raise DataError(f"{path / 'samples.parquet'}: sample {truncate(str(dup))!r} appears twice")
    df = df.set_index("sample_id", drop=False)
    fp = m.get("split_fingerprint", "")
    return StudyRun(path, m["method"], m["method"], m["dataset"], fp if isinstance(fp, str) else str(fp), df)


def _output_path(run: StudyRun, sid: str) -> Path | None:
    """The generated image of ``sid`` in ``run``, or None when the sample has none.

    A relative ``output`` must stay inside the run folder (symlinks resolved):
    a run whose table points elsewhere is refused rather than followed.
    """
    row = run.samples.loc[sid]
    if row.get("status") != "ok" or not isinstance(row.get("output"), str) or not row.get("output"):
        return None
    p = Path(row["output"])
    if not p.is_absolute():
        p = run.path / p
        base = os.path.realpath(run.path)
        if not os.path.realpath(p).startswith(base.rstrip(os.sep) + os.sep):
            raise DataError(f"{run.path / 'samples.parquet'}: sample {truncate(sid)!r}: output "
                            f"{truncate(row['output'])!r} leaves the run folder; refusing to read it")
    return p if p.is_file() else None


def _label_runs(runs: list[StudyRun]) -> None:
    seen: Counter[str] = Counter(r.method for r in runs)
    count: Counter[str] = Counter()
    for r in runs:
        if seen[r.method] > 1:
            count[r.method] += 1
            r.label = f"{r.method}#{count[r.method]}"


# ---------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------
def stratified_sample(rows: Sequence[tuple[str, str, str]], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` sample ids from ``(sample_id, domain, clip_id)`` rows, spread over domains
    (proportionally, largest remainder) and, within a domain, round-robin over clips."""
    rows = sorted(rows)
    if n >= len(rows):
        picked = [r[0] for r in rows]
        rng.shuffle(picked)
        return picked
    by_domain: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for sid, dom, clip in rows:
        by_domain[dom][clip].append(sid)
    domains = sorted(by_domain)
    sizes = np.array([sum(len(v) for v in by_domain[d].values()) for d in domains], dtype=float)
    quota = sizes / sizes.sum() * n
    alloc = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - alloc), kind="stable")[: n - alloc.sum()]:
        alloc[i] += 1
    picked: list[str] = []
    for d, k in zip(domains, alloc):
        clips = sorted(by_domain[d])
        rng.shuffle(clips)
        queues = []
        for c in clips:
            ids = list(by_domain[d][c])
            rng.shuffle(ids)
            queues.append(ids)
        got: list[str] = []
        while len(got) < k:
            for q in queues:
                if q and len(got) < k:
                    got.append(q.pop())
        picked.extend(got)
    rng.shuffle(picked)
    return picked


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------
@dataclass
class ExportResult:
    out: Path
    batch_csv: Path
    task_html: Path
    key_json: Path
    preview_html: Path
    n_items: int
    n_attention: int
    warnings: list[str] = field(default_factory=list)


def _templates():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("egobench", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


class _Names:
    """Opaque, unique, seeded 16-hex names."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.used: set[str] = set()

    def __call__(self) -> str:
        while True:
            name = "".join(f"{b:02x}" for b in self.rng.integers(0, 256, 8, dtype=np.uint8))
            if name not in self.used:
                self.used.add(name)
                return name


def common_size(width: int, height: int, max_side: int = MAX_IMAGE_SIDE) -> tuple[int, int]:
    """The size every image of an item is shown at: the input frame's ``(width, height)``,
    scaled down (aspect kept) when its long side exceeds ``max_side``."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def encode_study_image(src: Path, size: tuple[int, int]) -> bytes:
    """``src`` as the bytes of an 8-bit RGB PNG of exactly ``size`` with no metadata.

    Resized with LANCZOS (:data:`IMAGE_RESAMPLE`) when its size differs, copied
    into a fresh image so nothing of the source's ``info`` (ICC profile, EXIF,
    text, DPI, gamma) reaches the encoder, and saved at one fixed compression
    level (:data:`PNG_COMPRESS_LEVEL`), so the file reveals nothing but pixels.
    """
    from PIL import Image

    from .images import open_rgb

    img = open_rgb(src)
    if img.size != tuple(size):
        img = img.resize(tuple(size), Image.Resampling.LANCZOS)
    clean = Image.frombytes("RGB", img.size, img.tobytes())
    buf = io.BytesIO()
    clean.save(buf, format="PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def _copy_image(src: Path, images_dir: Path, name: str, size: tuple[int, int]) -> str:
    """Write ``src`` as ``<images_dir>/<name>.png`` at ``size`` (see :func:`encode_study_image`)."""
    atomic_write_bytes(images_dir / f"{name}.png", encode_study_image(Path(src), size))
    return f"{name}.png"


def _item_size(input_path: Path) -> tuple[int, int]:
    from .images import image_size

    return common_size(*image_size(input_path))


def _csv_text(header: list[str], rows: list[dict[str, str]]) -> str:
    """The batch CSV; every cell goes through :func:`egobench.io.csv_cell`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(csv_row(header))
    for r in rows:
        w.writerow(csv_row(r[h] for h in header))
    return buf.getvalue()


# ---------------------------------------------------------------------------
# All-or-nothing output folders
# ---------------------------------------------------------------------------
_PARTIAL = ".egobench-partial-"
_OLD = ".egobench-old-"


def _lock_dir(path: Path) -> int | None:
    """An exclusive, non-blocking flock on folder ``path``: its fd, or None when another process holds it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _remove_stale(out: Path) -> None:
    """Remove staging/old folders of ``out`` left by a killed egobench (those no live process holds)."""
    for prefix in (f".{out.name}{_PARTIAL}", f".{out.name}{_OLD}"):
        for d in out.parent.glob(glob.escape(prefix) + "*"):
            if not d.is_dir() or d.is_symlink():
                continue
            fd = _lock_dir(d)
            if fd is None:
                continue  # a running export/import owns it
            try:
                shutil.rmtree(d, ignore_errors=True)
            finally:
                os.close(fd)


@contextlib.contextmanager
def _staged_folder(out: Path):
    """A locked, hidden folder beside ``out`` to build the outputs in; removed on any error.

    Leftovers of a killed run (only ever beside ``out``, never in it) are removed
    by the next run for the same ``out``.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}{_PARTIAL}", dir=out.parent))
    fd = _lock_dir(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if fd is not None:
            os.close(fd)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _publish(staged: Path, out: Path, replaceable: frozenset[str] = frozenset()) -> None:
    """Move the finished folder ``staged`` to ``out`` in one rename.

    ``out`` may be missing or an empty folder. When every entry of an existing
    ``out`` is in ``replaceable`` (an earlier result of the same command), the
    old folder is renamed aside first and removed after: a kill between the two
    renames leaves the old folder hidden beside ``out`` and no half of either.
    """
    old = old_fd = None
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file; --out must be a folder")
    if out.exists() and not _is_empty_dir(out):
        entries = sorted(p.name for p in out.iterdir())
        if not replaceable or not set(entries) <= replaceable:
            raise UserError(f"{out}: already exists and holds other files ({truncate(', '.join(entries))}); "
                            "choose a new or empty --out folder")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}{_OLD}", dir=out.parent))
        old_fd = _lock_dir(old)
        os.rename(out, old / "prev")
    try:
        try:
            os.rename(staged, out)
        except BaseException as e:
            if old is not None:  # put the previous result back
                with contextlib.suppress(OSError):
                    os.rename(old / "prev", out)
            if isinstance(e, OSError) and e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise UserError(f"{out}: another egobench process wrote this folder meanwhile; "
                                "choose another --out") from None
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if old_fd is not None:
            os.close(old_fd)


_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def substitute(layout: str, values: dict[str, str]) -> str:
    """Fill ``${var}`` like the requester site does, HTML-escaping every value."""
    from markupsafe import escape

    def repl(m: re.Match) -> str:
        if m.group(1) not in values:
            raise UserError(f"layout variable ${{{m.group(1)}}} has no column in the batch")
        return str(escape(values[m.group(1)]))

    return _VAR.sub(repl, layout)


def layout_variables(layout: str) -> list[str]:
    return list(dict.fromkeys(_VAR.findall(layout)))


def export_amt(
    dataset: str,
    runs: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    n: int = 60,
    raters: int = 5,
    seed: int = 0,
    image_base_url: str | None = None,
    attention_checks: int = 0,
    study: str = "action",
    preview_items: int = 3,
) -> ExportResult:
    """Write an MTurk batch for ``runs`` on ``dataset`` under ``out`` (see the module doc).

    Every image of one item is resized with LANCZOS to the item's common size
    (:func:`common_size` of its input frame) and written as a metadata-free RGB
    PNG (:func:`encode_study_image`). ``out`` must be new or empty; it appears
    complete or not at all.
    """
    # 1. Check inputs (nothing is written before they pass)
    if study not in STUDIES:
        raise UserError(f"unknown study '{study}'; use one of {', '.join(STUDIES)}")
    if n < 1 or raters < 1 or attention_checks < 0:
        raise UserError("--n and --raters must be at least 1 and --attention-checks at least 0")
    if not runs:
        raise UserError("give at least one run directory (--runs)")
    if image_base_url is not None and not re.match(r"^https?://[^\s\"'<>]+$", image_base_url):
        raise UserError(f"--image-base-url {truncate(image_base_url)!r}: give an http:// or https:// URL "
                        "without spaces or quotes")
    loaded = [_load_run(Path(r), study) for r in runs]
    if study == "action" and len(loaded) < 2:
        raise UserError("the action study compares methods: give at least two runs")
    for r in loaded:
        if r.dataset != dataset:
            raise UserError(f"{r.path}: run is on dataset '{truncate(r.dataset)}', not '{truncate(dataset)}'")
    fps = {r.fingerprint for r in loaded}
    if len(fps) > 1:
        raise UserError("the runs were made on different versions of the split (split fingerprints differ)")
    _label_runs(loaded)
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file; --out must be a folder")
    if (out / "upload" / "batch.csv").exists() or (out / "private" / "key.json").exists():
        raise UserError(f"{out}: already holds an export; choose another --out or remove it")
    if out.exists() and not _is_empty_dir(out):
        raise UserError(f"{out}: is not empty; export-amt writes a new folder: choose a new or empty --out")

    with _staged_folder(out) as stage:
        key = _build_export(dataset, loaded, stage, n=n, raters=raters, seed=seed, image_base_url=image_base_url,
                            attention_checks=attention_checks, study=study, preview_items=preview_items)
        _publish(stage, out)
    warnings = list(key.pop("_warnings"))
    return ExportResult(out, out / "upload" / "batch.csv", out / "upload" / "task.html", out / "private" / "key.json",
                        out / "preview.html", key["study"]["n_items"], attention_checks, warnings)


def _build_export(dataset: str, loaded: list[StudyRun], out: Path, *, n: int, raters: int, seed: int,
                  image_base_url: str | None, attention_checks: int, study: str, preview_items: int) -> dict:
    """Write the whole export under ``out`` (a staging folder); return the key (plus ``_warnings``)."""
    upload = out / "upload"
    images_dir = upload / "images"
    private = out / "private"
    images_dir.mkdir(parents=True, exist_ok=True)
    private.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    names = _Names(np.random.default_rng([seed, 1]))
    base = loaded[0].samples
    if study == "action":
        eligible = [sid for sid in base.index if all(sid in r.samples.index and _output_path(r, sid) for r in loaded)]
    else:
        eligible = [sid for sid in base.index if all(sid in r.samples.index for r in loaded)]
    if not eligible:
        raise UserError("no sample has an image in every run")
    rows = [(sid, str(base.loc[sid, "domain"]), str(base.loc[sid, "clip_id"])) for sid in eligible]
    chosen = stratified_sample(rows, n, rng)
    warnings = []
    if len(chosen) < n:
        warnings.append(f"only {len(chosen)} samples are available (asked for {n})")

    def url(name: str) -> str:
        return f"{image_base_url.rstrip('/')}/{name}" if image_base_url else f"images/{name}"

    items: list[dict[str, Any]] = []  # batch rows, before the final shuffle
    key_items: dict[str, dict[str, Any]] = {}
    local: dict[str, dict[str, str]] = {}  # item -> variable -> local image path (for the preview)
    K = len(loaded)

    if study == "action":
        header = ["item_id", "input_image_url", "action"] + [f"candidate_{k + 1}_url" for k in range(K)]
        for sid in chosen:
            s = base.loc[sid]
            item = names()
            size = _item_size(Path(s["input_path"]))
            inp = _copy_image(Path(s["input_path"]), images_dir, names(), size)
            perm = rng.permutation(K)
            row = {"item_id": item, "input_image_url": url(inp), "action": str(s["action"])}
            loc = {"input_image_url": f"upload/images/{inp}"}
            slots = {}
            for k, ri in enumerate(perm):
                r = loaded[int(ri)]
                img = _copy_image(_output_path(r, sid), images_dir, names(), size)
                row[f"candidate_{k + 1}_url"] = url(img)
                loc[f"candidate_{k + 1}_url"] = f"upload/images/{img}"
                slots[f"candidate_{k + 1}"] = {"method": r.label, "run": str(r.path.resolve()), "image": img}
            items.append(row)
            local[item] = loc
            key_items[item] = {"kind": "study", "sample_id": sid, "domain": str(s["domain"]),
                               "clip_id": str(s["clip_id"]), "input_image": inp, "slots": slots, "expected": None,
                               "image_size": list(size)}
        # attention checks: the real action frame among frames of unrelated scenes
        chosen_set = set(chosen)
        pool = [sid for sid in base.index if sid not in chosen_set] or list(base.index)
        for _ in range(attention_checks):
            sid = str(pool[int(rng.integers(len(pool)))])
            s = base.loc[sid]
            others = [o for o in base.index if base.loc[o, "clip_id"] != s["clip_id"]] or [
                o for o in base.index if o != sid]
            if len(others) < K - 1:
                raise UserError("too few unrelated samples to build attention checks")
            wrong = [str(others[int(i)]) for i in rng.choice(len(others), K - 1, replace=False)]
            item = names()
            size = _item_size(Path(s["input_path"]))
            inp = _copy_image(Path(s["input_path"]), images_dir, names(), size)
            right = int(rng.integers(K))
            row = {"item_id": item, "input_image_url": url(inp), "action": str(s["action"])}
            loc = {"input_image_url": f"upload/images/{inp}"}
            slots = {}
            w = iter(wrong)
            for k in range(K):
                src_id = sid if k == right else next(w)
                img = _copy_image(Path(base.loc[src_id, "target_path"]), images_dir, names(), size)
                row[f"candidate_{k + 1}_url"] = url(img)
                loc[f"candidate_{k + 1}_url"] = f"upload/images/{img}"
                slots[f"candidate_{k + 1}"] = {"method": "ground-truth" if k == right else "distractor",
                                               "source_sample": src_id, "image": img}
            items.append(row)
            local[item] = loc
            key_items[item] = {"kind": "attention", "sample_id": sid, "domain": str(s["domain"]),
                               "clip_id": str(s["clip_id"]), "input_image": inp, "slots": slots,
                               "expected": f"candidate_{right + 1}", "image_size": list(size)}
    else:
        header = ["item_id", "input_image_url", "target_image_url", "action", "description"]
        for sid in chosen:
            s = base.loc[sid]
            size = _item_size(Path(s["input_path"]))
            inp = _copy_image(Path(s["input_path"]), images_dir, names(), size)
            tgt = _copy_image(Path(s["target_path"]), images_dir, names(), size)
            groups: dict[str, list[StudyRun]] = {}
            for r in loaded:  # one item per distinct description of this sample
                groups.setdefault(str(r.samples.loc[sid, "description"]), []).append(r)
            for text, rs in groups.items():
                item = names()
                items.append({"item_id": item, "input_image_url": url(inp), "target_image_url": url(tgt),
                              "action": str(s["action"]), "description": text})
                local[item] = {"input_image_url": f"upload/images/{inp}", "target_image_url": f"upload/images/{tgt}"}
                key_items[item] = {"kind": "study", "sample_id": sid, "domain": str(s["domain"]),
                                   "clip_id": str(s["clip_id"]), "sources": [r.label for r in rs],
                                   "runs": [str(r.path.resolve()) for r in rs], "expected": None,
                                   "image_size": list(size)}
        # attention checks: a description of an unrelated scene must get "no"
        for _ in range(attention_checks):
            sid = str(base.index[int(rng.integers(len(base)))])
            s = base.loc[sid]
            others = [o for o in base.index if base.loc[o, "clip_id"] != s["clip_id"]
                      and base.loc[o, "description"] != s["description"]]
            if not others:
                raise UserError("too few unrelated samples to build attention checks")
            o = str(others[int(rng.integers(len(others)))])
            item = names()
            size = _item_size(Path(s["input_path"]))
            inp = _copy_image(Path(s["input_path"]), images_dir, names(), size)
            tgt = _copy_image(Path(s["target_path"]), images_dir, names(), size)
            items.append({"item_id": item, "input_image_url": url(inp), "target_image_url": url(tgt),
                          "action": str(s["action"]), "description": str(base.loc[o, "description"])})
            local[item] = {"input_image_url": f"upload/images/{inp}", "target_image_url": f"upload/images/{tgt}"}
            key_items[item] = {"kind": "attention", "sample_id": sid, "description_from": o,
                               "domain": str(s["domain"]), "clip_id": str(s["clip_id"]), "expected": "no",
                               "image_size": list(size)}

    order = rng.permutation(len(items))
    items = [items[int(i)] for i in order]

    env = _templates()
    tpl = env.get_template(f"amt_{study}.html.j2")
    question = ACTION_QUESTION if study == "action" else DESCRIPTION_QUESTION
    layout = tpl.render(n_candidates=K, fallback=False, question=question)
    missing = set(layout_variables(layout)) - set(header)
    assert not missing, missing  # the template and the batch agree
    fallback = tpl.render(n_candidates=K, fallback=True, question=question)
    body = fallback.split("<!--BODY-->")[1]
    sections = []
    for row in items[: max(1, preview_items)]:
        # the values the requester site will substitute: the batch cells as written
        vals = {k: csv_row([v])[0] for k, v in row.items()}
        sections.append(substitute(body, {**vals, **local[row["item_id"]]}))
    head, _, tail = fallback.partition("<!--BODY-->")
    tail = tail.partition("<!--BODY-->")[2]
    preview = head + "\n".join(sections) + tail

    atomic_write_text(upload / "batch.csv", _csv_text(header, items))
    atomic_write_text(upload / "task.html", layout.replace("<!--BODY-->\n", ""))
    atomic_write_text(out / "preview.html", preview)
    key = {
        "egobench_key_version": KEY_VERSION,
        "study": {
            "type": study, "dataset": dataset, "n_requested": n, "n_items": len(chosen),
            "attention_checks": attention_checks, "raters_per_item": raters, "seed": seed,
            "image_base_url": image_base_url, "n_candidates": K if study == "action" else None,
            "question": question,
            "images": {"size": f"input frame size, long side at most {MAX_IMAGE_SIDE} px",
                       "resample": IMAGE_RESAMPLE, "format": "PNG", "mode": "RGB",
                       "png_compress_level": PNG_COMPRESS_LEVEL, "metadata": "none"},
            "split_fingerprint": loaded[0].fingerprint,
            "runs": [{"label": r.label, "method": r.method, "path": str(r.path.resolve())} for r in loaded],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "items": key_items,
    }
    atomic_write_json(private / "key.json", key)
    atomic_write_text(out / "README.txt", _readme(study, raters, image_base_url, len(items)))
    if not image_base_url:
        warnings.append("no --image-base-url: batch.csv holds relative image paths; host upload/images/ and "
                        "re-export with its URL before uploading")
    key["_warnings"] = warnings
    return key


def _readme(study: str, raters: int, base: str | None, n_rows: int) -> str:
    return f"""egobench crowd study export ({study} study, {n_rows} batch rows)

upload/            everything the workers can see; contains no method or run names
  task.html        paste into the requester site: Create > New Project > (Other) > Design Layout > Source
  batch.csv        Publish Batch > upload this file (one HIT per row)
  images/          host these files at {base or '<your --image-base-url>'} (batch.csv points there)
private/key.json   maps every item and candidate slot back to methods/runs; keep it, never upload it
preview.html       the layout filled with the first items, using the local images (open in a browser)

Images: every image of one item (input frame, candidates, attention-check frames) has the same
size -- the item's input frame size, long side at most {MAX_IMAGE_SIDE} px -- resized with the
{IMAGE_RESAMPLE} filter and saved as 8-bit RGB PNG (zlib level {PNG_COMPRESS_LEVEL}) without metadata
(no EXIF, ICC profile, text, gamma or DPI chunks), so no method can be told apart by its file.
CSV cells beginning with = + - @, tab or CR carry a leading apostrophe (spreadsheet formula guard).

Set "Number of assignments per task" to {raters} (raters per item) in the project settings.
After the batch: Manage > Download CSV, then
  egobench import-amt --results Batch_..._batch_results.csv --key private/key.json --out results/
"""


# ---------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------
@dataclass
class Judgment:
    item: str
    worker: str
    answer: str  # candidate_k (action) or yes/no (description)
    line: int


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("true", "on", "1", "yes", "checked")


def _answer_of(row: dict[str, str], study: str, n_slots: int, where: str = "") -> list[str]:
    """Every answer a row carries, in whichever of MTurk's encodings it came:
    ``Answer.choice`` = value; ``Answer.choice.<value>`` = true/false
    (crowd-radio-button output flattened); ``Answer.taskAnswers`` JSON (parsed
    strictly: depth limit and duplicate keys are one-line errors prefixed with
    ``where``)."""
    field_name = "choice" if study == "action" else "aligned"
    valid = [f"candidate_{k + 1}" for k in range(n_slots)] if study == "action" else ["yes", "no"]
    found: list[str] = []

    def norm(v: str) -> str | None:
        v = v.strip().lower()
        if study == "action" and v.isdigit():
            v = f"candidate_{v}"
        return v if v in valid else None

    direct = row.get(f"Answer.{field_name}")
    if direct is not None and direct.strip():
        v = norm(direct)
        found.append(v if v else f"?{direct.strip()}")
    prefix = f"Answer.{field_name}."
    for col, v in row.items():
        if col and col.startswith(prefix) and _truthy(v):
            sub = col[len(prefix):]
            nv = norm(sub)
            found.append(nv if nv else f"?{sub}")
    ta = row.get("Answer.taskAnswers")
    if ta and ta.strip():
        try:
            data = loads_strict(ta, "column Answer.taskAnswers")
        except DataError as e:
            raise DataError(f"{where}{e} (the value should be the JSON the requester site wrote)") from None
        for entry in data if isinstance(data, list) else [data]:
            sel = entry.get(field_name) if isinstance(entry, dict) else None
            if isinstance(sel, dict):
                for sub, on in sel.items():
                    if on is True:
                        nv = norm(sub)
                        found.append(nv if nv else f"?{sub}")
            elif isinstance(sel, str) and sel.strip():
                nv = norm(sel)
                found.append(nv if nv else f"?{sel}")
    return list(dict.fromkeys(found))


def read_results(path: str | os.PathLike, key: dict[str, Any]) -> tuple[list[Judgment], dict[str, int]]:
    """Parse a results CSV into judgments; malformed or incomplete rows are one-line DataErrors."""
    path = Path(path)
    study = key["study"]["type"]
    n_slots = key["study"].get("n_candidates") or 0
    items = key["items"]
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; give the results CSV file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}: line {line}: not UTF-8 text (byte {e.start}: {e.reason}); use the CSV as "
                        "downloaded from the requester site, or re-save it as UTF-8") from None
    if not text.strip():
        raise DataError(f"{path}: empty results file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as e:
        raise DataError(f"{path}: line 1: malformed CSV ({e})") from None
    required = ["HITId", "WorkerId", "Input.item_id"]
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: line 1: missing column(s) {', '.join(missing)} (is this a results CSV of "
                        "this study?)")
    if len(set(header)) != len(header):
        dup = [c for c, k in Counter(header).items() if k > 1][0]
        raise DataError(f"{path}: line 1: duplicate column '{truncate(dup)}'")
    field_name = "choice" if study == "action" else "aligned"
    if not any(c == f"Answer.{field_name}" or c.startswith(f"Answer.{field_name}.") or c == "Answer.taskAnswers"
               for c in header):
        raise DataError(f"{path}: line 1: no answer column (expected Answer.{field_name}[.<value>] or "
                        "Answer.taskAnswers)")
    out: list[Judgment] = []
    stats = {"rows": 0, "rejected": 0}
    seen: dict[tuple[str, str], int] = {}
    assignments: dict[str, int] = {}
    has_assignment = "AssignmentId" in header
    line = reader.line_num + 1
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise DataError(f"{path}: line {line}: malformed CSV ({e})") from None
        start, line = line, reader.line_num + 1
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) != len(header):
            raise DataError(f"{path}: line {start}: {len(rec)} fields, header has {len(header)} "
                            "(truncated or malformed row)")
        row = dict(zip(header, rec))
        stats["rows"] += 1
        if has_assignment:
            aid = row["AssignmentId"].strip()
            if not aid:
                raise DataError(f"{path}: line {start}: column AssignmentId: empty")
            if aid in assignments:
                raise DataError(f"{path}: line {start}: column AssignmentId: {truncate(aid)!r} also on line "
                                f"{assignments[aid]} (rows pasted twice? keep one of them)")
            assignments[aid] = start
        status = row.get("AssignmentStatus", "").strip()
        if status == "Rejected":
            stats["rejected"] += 1
            continue
        worker = row["WorkerId"].strip()
        item = row["Input.item_id"].strip()
        if not worker:
            raise DataError(f"{path}: line {start}: column WorkerId: empty")
        if item not in items:
            raise DataError(f"{path}: line {start}: column Input.item_id: item {truncate(item)!r} is not in the "
                            "key (results of another batch? give the key.json of the batch these results are for)")
        answers = _answer_of(row, study, n_slots, f"{path}: line {start}: ")
        bad = [a for a in answers if a.startswith("?")]
        if bad:
            raise DataError(f"{path}: line {start}: unexpected answer {truncate(bad[0][1:])!r}")
        if not answers:
            raise DataError(f"{path}: line {start}: no answer (incomplete assignment)")
        if len(answers) > 1:
            raise DataError(f"{path}: line {start}: more than one answer ({truncate(', '.join(answers))})")
        if (worker, item) in seen:
            raise DataError(f"{path}: line {start}: worker {truncate(worker)!r} answered item {truncate(item)!r} "
                            f"twice (also line {seen[(worker, item)]})")
        seen[(worker, item)] = start
        out.append(Judgment(item, worker, answers[0], start))
    if not out:
        raise DataError(f"{path}: no usable judgments")
    return out, stats


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of an (items x categories) count matrix with equal row sums (>= 2)."""
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or counts.shape[0] == 0:
        return None
    n = counts.sum(1)
    if not np.all(n == n[0]) or n[0] < 2:
        return None
    n = n[0]
    N = counts.shape[0]
    p_j = counts.sum(0) / (N * n)
    P_i = (np.square(counts).sum(1) - n) / (n * (n - 1))
    P_bar = P_i.mean()
    P_e = float(np.square(p_j).sum())
    if P_e >= 1.0 - 1e-12:
        return None  # every judgment in one category: kappa undefined
    k = (P_bar - P_e) / (1.0 - P_e)
    return float(min(1.0, max(-1.0, k)))


def win_rates(
    votes: dict[str, list[str]], categories: list[str], *, n_boot: int = 2000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Share of judgments per category (percent) with a 95% percentile bootstrap
    interval, resampling items. ``votes``: item -> chosen categories."""
    item_ids = sorted(votes)
    idx = {c: j for j, c in enumerate(categories)}
    M = np.zeros((len(item_ids), len(categories)))
    for i, it in enumerate(item_ids):
        for v in votes[it]:
            M[i, idx[v]] += 1
    total = M.sum()
    point = M.sum(0) / total * 100 if total else np.zeros(len(categories))
    rng = np.random.default_rng(seed)
    if len(item_ids):
        draws = rng.integers(0, len(item_ids), size=(n_boot, len(item_ids)))
        sums = np.stack([M[d].sum(0) for d in draws])
        tot = sums.sum(1, keepdims=True)
        shares = np.divide(sums, tot, out=np.zeros_like(sums), where=tot > 0) * 100
        lo, hi = np.percentile(shares, [2.5, 97.5], axis=0)
    else:
        lo = hi = np.zeros(len(categories))
    return {c: {"rate": float(point[j]), "ci_low": float(lo[j]), "ci_high": float(hi[j]),
                "votes": int(M[:, j].sum())} for j, c in enumerate(categories)}


def _plurality_without(counts: Counter[str], leave_out: str | None) -> set[str]:
    """Most frequent answers in ``counts`` after removing one ``leave_out`` (O(categories))."""
    best, top = 0, set()
    for k, v in counts.items():
        v -= k == leave_out
        if v > best:
            best, top = v, {k}
        elif v == best and v > 0:
            top.add(k)
    return top


@dataclass
class StudyResult:
    study: str
    dataset: str
    rates: dict[str, dict[str, float]]
    kappa: float | None
    kappa_items: int
    kappa_raters: int
    raters: list[dict[str, Any]]
    excluded: list[str]
    n_judgments: int
    n_items: int
    stats: dict[str, int]

    def record(self) -> dict[str, Any]:
        return {
            "egobench_userstudy": 1, "study": self.study, "dataset": self.dataset,
            "measure": "win rate (%)" if self.study == "action" else "aligned (%)",
            "methods": self.rates, "fleiss_kappa": self.kappa, "kappa_items": self.kappa_items,
            "kappa_raters_per_item": self.kappa_raters, "n_judgments": self.n_judgments, "n_items": self.n_items,
            "raters": self.raters, "excluded_raters": self.excluded, "rows": self.stats,
            "interval": "95% percentile bootstrap over items (2000 resamples)",
        }


def analyze(
    judgments: list[Judgment], key: dict[str, Any], *, min_attention: float = 1.0, seed: int = 0,
    n_boot: int = 2000,
) -> StudyResult:
    """Win rates (or aligned rates), kappa and rater statistics from parsed judgments.

    Linear in the number of judgments: per-item answer counts are built once
    and each rater's leave-one-out majority is read from them.
    """
    study = key["study"]["type"]
    items = key["items"]
    by_worker: dict[str, list[Judgment]] = defaultdict(list)
    for j in judgments:
        by_worker[j.worker].append(j)
    # attention checks
    excluded: set[str] = set()
    att_rate: dict[str, float | None] = {}
    for w, js in by_worker.items():
        att = [j for j in js if items[j.item]["kind"] == "attention"]
        rate = (sum(j.answer == items[j.item]["expected"] for j in att) / len(att)) if att else None
        att_rate[w] = rate
        if rate is not None and rate < min_attention:
            excluded.add(w)
    kept = [j for j in judgments if j.worker not in excluded and items[j.item]["kind"] == "study"]

    per_item: dict[str, list[str]] = defaultdict(list)
    for j in kept:
        per_item[j.item].append(j.answer)
    item_counts = {it: Counter(ans) for it, ans in per_item.items()}

    if study == "action":
        methods = [r["label"] for r in key["study"]["runs"]]
        votes = {it: [items[it]["slots"][a]["method"] for a in ans] for it, ans in per_item.items()}
        rates = win_rates(votes, methods, n_boot=n_boot, seed=seed)
        cats = [f"candidate_{k + 1}" for k in range(key["study"]["n_candidates"])]
    else:
        sources = [r["label"] for r in key["study"]["runs"]]
        rates = {}
        for src in sources:
            v = {it: ans for it, ans in per_item.items() if src in items[it]["sources"]}
            rates[src] = win_rates(v, ["yes", "no"], n_boot=n_boot, seed=seed)["yes"]
        cats = ["yes", "no"]

    # Fleiss' kappa over the items that have the most common number of raters
    sizes = Counter(len(a) for a in per_item.values() if len(a) >= 2)
    kappa, k_items, k_raters = None, 0, 0
    if sizes:
        k_raters = max(sizes, key=lambda s: (sizes[s], s))
        rows = [it for it, ans in per_item.items() if len(ans) == k_raters]
        M = np.array([[item_counts[it][c] for c in cats] for it in rows])
        kappa, k_items = fleiss_kappa(M), len(rows)

    raters = []
    for w in sorted(by_worker):
        js = [j for j in by_worker[w] if items[j.item]["kind"] == "study"]
        agree = []
        for j in js:
            counts = item_counts.get(j.item)
            if counts is None:
                continue
            # leave-one-out: the majority of the other raters (an excluded rater's answer is not counted)
            top = _plurality_without(counts, None if w in excluded else j.answer)
            if top:
                agree.append(j.answer in top)
        raters.append({
            "worker": w, "judgments": len(js),
            "attention_checks": sum(items[j.item]["kind"] == "attention" for j in by_worker[w]),
            "attention_pass_rate": att_rate[w],
            "agreement_with_majority": (sum(agree) / len(agree)) if agree else None,
            "excluded": w in excluded,
        })
    return StudyResult(study, key["study"]["dataset"], rates, kappa, k_items, k_raters, raters, sorted(excluded),
                       len(kept), len(per_item), {})


IMPORT_FILES = frozenset({"userstudy.json", "userstudy.csv", "raters.csv", "winrate.svg"})


def _check_key(key: Any, key_path: str | os.PathLike) -> None:
    """One-line errors for a key.json that export-amt did not write (or that was edited)."""
    def bad(what: str) -> DataError:
        return DataError(f"{key_path}: {what}; not an egobench study key (use private/key.json from export-amt)")

    if not isinstance(key, dict) or not isinstance(key.get("study"), dict) or not isinstance(key.get("items"), dict):
        raise bad("no 'study' and 'items' objects")
    st = key["study"]
    if st.get("type") not in STUDIES:
        raise bad(f"study type {truncate(st.get('type'))} is not one of {', '.join(STUDIES)}")
    if not isinstance(st.get("runs"), list) or not all(isinstance(r, dict) and isinstance(r.get("label"), str)
                                                       for r in st["runs"]):
        raise bad("'study.runs' is not a list of runs with labels")
    if st["type"] == "action" and not (isinstance(st.get("n_candidates"), int) and st["n_candidates"] >= 1):
        raise bad("'study.n_candidates' is not a positive integer")
    labels = {r["label"] for r in st["runs"]}
    for name, it in key["items"].items():
        if not isinstance(it, dict) or it.get("kind") not in ("study", "attention"):
            raise bad(f"item {truncate(name)!r} has no kind 'study' or 'attention'")
        if st["type"] == "action":
            slots = it.get("slots")
            want = {f"candidate_{k + 1}" for k in range(st["n_candidates"])}
            if not isinstance(slots, dict) or set(slots) != want or not all(
                    isinstance(v, dict) and (it["kind"] == "attention" or v.get("method") in labels)
                    for v in slots.values()):
                raise bad(f"item {truncate(name)!r}: slots do not match the study's runs")
        elif it["kind"] == "study" and not (isinstance(it.get("sources"), list) and set(it["sources"]) <= labels):
            raise bad(f"item {truncate(name)!r}: sources do not match the study's runs")


def _render_outputs(res: StudyResult, results_name: str) -> dict[str, str]:
    """Every file import-amt writes, as text (CSV cells through csv_cell)."""
    from .plots import bar_chart_svg

    rec = res.record()
    rec["results_file"] = results_name
    files = {"userstudy.json": json.dumps(rec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(csv_row(["method", "rate", "ci_low", "ci_high", "votes"]))
    for m, r in res.rates.items():
        w.writerow(csv_row([m, f"{r['rate']:.2f}", f"{r['ci_low']:.2f}", f"{r['ci_high']:.2f}", str(r["votes"])]))
    files["userstudy.csv"] = buf.getvalue()
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(csv_row(["worker", "judgments", "attention_checks", "attention_pass_rate", "agreement_with_majority",
                        "excluded"]))
    for r in res.raters:
        w.writerow(csv_row([r["worker"], r["judgments"], r["attention_checks"],
                            "" if r["attention_pass_rate"] is None else f"{r['attention_pass_rate']:.3f}",
                            "" if r["agreement_with_majority"] is None else f"{r['agreement_with_majority']:.3f}",
                            int(r["excluded"])]))
    files["raters.csv"] = buf.getvalue()
    labels = list(res.rates)
    title = ("User study: win rate" if res.study == "action" else "Description study: aligned") + f" ({res.dataset})"
    files["winrate.svg"] = bar_chart_svg(labels, [res.rates[m]["rate"] for m in labels],
                                         [res.rates[m]["ci_low"] for m in labels],
                                         [res.rates[m]["ci_high"] for m in labels], title=title, unit="%", vmax=100.0)
    assert set(files) == IMPORT_FILES
    return files


def import_amt(
    results: str | os.PathLike, key_path: str | os.PathLike, out: str | os.PathLike | None = None, *,
    min_attention: float = 1.0, seed: int = 0, n_boot: int = 2000,
) -> tuple[StudyResult, Path | None]:
    """Parse ``results`` with ``key_path``; write ``userstudy.json/csv``, ``raters.csv`` and
    ``winrate.svg`` under ``out`` when given.

    The four files are built in a hidden folder beside ``out`` and renamed into
    place together: ``out`` holds either the previous complete result or the new
    one, never a mix. An existing ``out`` may only hold these four files.
    """
    key = read_json(key_path)
    _check_key(key, key_path)
    judgments, stats = read_results(results, key)
    res = analyze(judgments, key, min_attention=min_attention, seed=seed, n_boot=n_boot)
    res.stats = stats
    if out is None:
        return res, None
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file; --out must be a folder")
    if out.is_dir() and not set(p.name for p in out.iterdir()) <= IMPORT_FILES:
        raise UserError(f"{out}: holds files import-amt did not write; choose a new or empty --out folder")
    files = _render_outputs(res, Path(results).name)
    with _staged_folder(out) as stage:
        for name in sorted(IMPORT_FILES - {"userstudy.json"}) + ["userstudy.json"]:
            atomic_write_text(stage / name, files[name])
        _publish(stage, out, IMPORT_FILES)
    return res, out


def load_userstudy(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``userstudy.json`` (for Table 3)."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("egobench_userstudy") != 1 or "methods" not in data:
        raise DataError(f"{path}: not an egobench user-study result (made by egobench import-amt)")
    return data


def _shown(text: str, limit: int = 60) -> str:
    """A user string (worker id, method label) safe to print on a terminal: control
    characters escaped (no ANSI sequences, no line breaks), cut to ``limit``."""
    text = str(text)
    if not text.isprintable():
        text = repr(text)[1:-1]
    return truncate(text, limit)


def format_summary(res: StudyResult) -> str:
    lines = [f"{res.study} study on {_shown(res.dataset)}: {res.n_judgments} judgments on {res.n_items} items"]
    for m, r in sorted(res.rates.items(), key=lambda kv: -kv[1]["rate"]):
        lines.append(f"  {_shown(m):<24} {r['rate']:6.2f}%  [{r['ci_low']:.2f}, {r['ci_high']:.2f}]  ({r['votes']} votes)")
    k = "n/a" if res.kappa is None or math.isnan(res.kappa) else f"{res.kappa:.3f}"
    lines.append(f"Fleiss' kappa {k} over {res.kappa_items} items with {res.kappa_raters} raters each")
    if res.excluded:
        lines.append(f"excluded {len(res.excluded)} rater(s) failing attention checks: {', '.join(_shown(w) for w in res.excluded)}")
    if res.stats.get("rejected"):
        lines.append(f"skipped {res.stats['rejected']} rejected assignment(s)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Commands (registered through the ``egobench.commands`` entry-point group)
# ---------------------------------------------------------------------------
import click  # noqa: E402


@click.command("export-amt")
@click.option("--dataset", "-d", required=True, help="dataset the runs were made on")
@click.option("--runs", "runs", required=True, multiple=True, help="run directory (repeatable; or several after one --runs)")
@click.argument("more_runs", nargs=-1)
@click.option("--n", "n", type=int, default=60, show_default=True, help="study items (examples)")
@click.option("--raters", type=int, default=5, show_default=True, help="raters (assignments) per item")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--image-base-url", default=None, help="URL where upload/images/ will be hosted")
@click.option("--attention-checks", type=int, default=0, show_default=True, help="extra items with a known answer")
@click.option("--study", type=click.Choice(list(STUDIES)), default="action", show_default=True)
@click.option("--out", required=True, help="export folder (upload/, private/, preview.html)")
def export_amt_cmd(dataset, runs, more_runs, n, raters, seed, image_base_url, attention_checks, study, out):
    """Write a Mechanical Turk batch (blind, shuffled) for a crowd study of runs."""
    res = export_amt(dataset, list(runs) + list(more_runs), out, n=n, raters=raters, seed=seed,
                     image_base_url=image_base_url, attention_checks=attention_checks, study=study)
    click.echo(f"{res.n_items} item(s) + {res.n_attention} attention check(s)")
    click.echo(f"upload:  {res.batch_csv.parent}  (batch.csv, task.html, images/)")
    click.echo(f"private: {res.key_json}  (keep; never upload)")
    click.echo(f"preview: {res.preview_html}")
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)


@click.command("import-amt")
@click.option("--results", required=True, help="Batch_..._batch_results.csv from the requester site")
@click.option("--key", "key", required=True, help="private/key.json written by export-amt")
@click.option("--out", default=None, help="folder for userstudy.json/csv, raters.csv, winrate.svg")
@click.option("--min-attention", type=float, default=1.0, show_default=True,
              help="raters whose attention-check pass rate is below this are excluded")
@click.option("--seed", type=int, default=0, show_default=True, help="bootstrap seed")
def import_amt_cmd(results, key, out, min_attention, seed):
    """Score a Mechanical Turk results file: win rates, kappa, rater statistics."""
    res, where = import_amt(results, key, out, min_attention=min_attention, seed=seed)
    click.echo(format_summary(res))
    if where:
        click.echo(f"written: {where / 'userstudy.json'} (Table 3 'User Study' column), {where / 'winrate.svg'}")
