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

Nothing under ``upload/`` names a method or a run: item ids and image names come
from a seeded RNG and images are re-encoded as PNG (no metadata).

``import_amt`` reads the requester site's results CSV (``HITId``, ``WorkerId``,
``AssignmentStatus``, ``Input.<variable>``, ``Answer.<field>``...), maps every
answer back through the key and writes win rates with bootstrap intervals,
Fleiss' kappa, per-rater statistics and a bar chart.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, UserError
from .io import atomic_write_json, atomic_write_text, read_json

STUDIES = ("action", "description")
KEY_VERSION = 1
ACTION_QUESTION = (
    "Which image best shows the action being performed while preserving the most context of the input frame?"
)
DESCRIPTION_QUESTION = "Does the description align with the input frame and the action frame?"


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


def _load_run(path: Path) -> StudyRun:
    import pandas as pd

    path = Path(path)
    if not (path / "metrics.json").is_file() or not (path / "samples.parquet").is_file():
        raise UserError(f"{path}: not a run directory (needs metrics.json and samples.parquet)")
    m = read_json(path / "metrics.json")
    df = pd.read_parquet(path / "samples.parquet").set_index("sample_id", drop=False)
    return StudyRun(path, m["method"], m["method"], m["dataset"], m.get("split_fingerprint", ""), df)


def _output_path(run: StudyRun, sid: str) -> Path | None:
    row = run.samples.loc[sid]
    if row.get("status") != "ok" or not row.get("output"):
        return None
    p = Path(row["output"])
    p = p if p.is_absolute() else run.path / p
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


def _copy_image(src: Path, images_dir: Path, name: str) -> str:
    """Re-encode ``src`` as a metadata-free PNG named ``<name>.png``."""
    from .images import open_rgb

    img = open_rgb(src)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    from .io import atomic_write_bytes

    atomic_write_bytes(images_dir / f"{name}.png", buf.getvalue())
    return f"{name}.png"


def _csv_text(header: list[str], rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


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
    """Write an MTurk batch for ``runs`` on ``dataset`` under ``out`` (see the module doc)."""
    if study not in STUDIES:
        raise UserError(f"unknown study '{study}'; use one of {', '.join(STUDIES)}")
    if n < 1 or raters < 1 or attention_checks < 0:
        raise UserError("--n and --raters must be at least 1 and --attention-checks at least 0")
    if not runs:
        raise UserError("give at least one run directory (--runs)")
    loaded = [_load_run(Path(r)) for r in runs]
    if study == "action" and len(loaded) < 2:
        raise UserError("the action study compares methods: give at least two runs")
    for r in loaded:
        if r.dataset != dataset:
            raise UserError(f"{r.path}: run is on dataset '{r.dataset}', not '{dataset}'")
    fps = {r.fingerprint for r in loaded}
    if len(fps) > 1:
        raise UserError("the runs were made on different versions of the split (split fingerprints differ)")
    _label_runs(loaded)
    out = Path(out)
    upload = out / "upload"
    images_dir = upload / "images"
    private = out / "private"
    if (upload / "batch.csv").exists() or (private / "key.json").exists():
        raise UserError(f"{out}: already holds an export; choose another --out or remove it")
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
            inp = _copy_image(Path(s["input_path"]), images_dir, names())
            perm = rng.permutation(K)
            row = {"item_id": item, "input_image_url": url(inp), "action": str(s["action"])}
            loc = {"input_image_url": f"upload/images/{inp}"}
            slots = {}
            for k, ri in enumerate(perm):
                r = loaded[int(ri)]
                img = _copy_image(_output_path(r, sid), images_dir, names())
                row[f"candidate_{k + 1}_url"] = url(img)
                loc[f"candidate_{k + 1}_url"] = f"upload/images/{img}"
                slots[f"candidate_{k + 1}"] = {"method": r.label, "run": str(r.path.resolve()), "image": img}
            items.append(row)
            local[item] = loc
            key_items[item] = {"kind": "study", "sample_id": sid, "domain": str(s["domain"]),
                               "clip_id": str(s["clip_id"]), "input_image": inp, "slots": slots, "expected": None}
        # attention checks: the real action frame among frames of unrelated scenes
        pool = [sid for sid in base.index if sid not in set(chosen)] or list(base.index)
        for _ in range(attention_checks):
            sid = str(pool[int(rng.integers(len(pool)))])
            s = base.loc[sid]
            others = [o for o in base.index if base.loc[o, "clip_id"] != s["clip_id"]] or [
                o for o in base.index if o != sid]
            if len(others) < K - 1:
                raise UserError("too few unrelated samples to build attention checks")
            wrong = [str(others[int(i)]) for i in rng.choice(len(others), K - 1, replace=False)]
            item = names()
            inp = _copy_image(Path(s["input_path"]), images_dir, names())
            right = int(rng.integers(K))
            row = {"item_id": item, "input_image_url": url(inp), "action": str(s["action"])}
            loc = {"input_image_url": f"upload/images/{inp}"}
            slots = {}
            w = iter(wrong)
            for k in range(K):
                src_id = sid if k == right else next(w)
                img = _copy_image(Path(base.loc[src_id, "target_path"]), images_dir, names())
                row[f"candidate_{k + 1}_url"] = url(img)
                loc[f"candidate_{k + 1}_url"] = f"upload/images/{img}"
                slots[f"candidate_{k + 1}"] = {"method": "ground-truth" if k == right else "distractor",
                                               "source_sample": src_id, "image": img}
            items.append(row)
            local[item] = loc
            key_items[item] = {"kind": "attention", "sample_id": sid, "domain": str(s["domain"]),
                               "clip_id": str(s["clip_id"]), "input_image": inp, "slots": slots,
                               "expected": f"candidate_{right + 1}"}
    else:
        header = ["item_id", "input_image_url", "target_image_url", "action", "description"]
        for sid in chosen:
            s = base.loc[sid]
            inp = _copy_image(Path(s["input_path"]), images_dir, names())
            tgt = _copy_image(Path(s["target_path"]), images_dir, names())
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
                                   "runs": [str(r.path.resolve()) for r in rs], "expected": None}
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
            inp = _copy_image(Path(s["input_path"]), images_dir, names())
            tgt = _copy_image(Path(s["target_path"]), images_dir, names())
            items.append({"item_id": item, "input_image_url": url(inp), "target_image_url": url(tgt),
                          "action": str(s["action"]), "description": str(base.loc[o, "description"])})
            local[item] = {"input_image_url": f"upload/images/{inp}", "target_image_url": f"upload/images/{tgt}"}
            key_items[item] = {"kind": "attention", "sample_id": sid, "description_from": o,
                               "domain": str(s["domain"]), "clip_id": str(s["clip_id"]), "expected": "no"}

    order = rng.permutation(len(items))
    items = [items[int(i)] for i in order]

    env = _templates()
    tpl = env.get_template(f"amt_{study}.html.j2")
    layout = tpl.render(n_candidates=K, fallback=False, question=ACTION_QUESTION if study == "action"
                        else DESCRIPTION_QUESTION)
    missing = set(layout_variables(layout)) - set(header)
    assert not missing, missing  # the template and the batch agree
    fallback = tpl.render(n_candidates=K, fallback=True, question=ACTION_QUESTION if study == "action"
                          else DESCRIPTION_QUESTION)
    body = fallback.split("<!--BODY-->")[1]
    sections = []
    for row in items[: max(1, preview_items)]:
        vals = {**row, **local[row["item_id"]]}
        sections.append(substitute(body, vals))
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
            "question": ACTION_QUESTION if study == "action" else DESCRIPTION_QUESTION,
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
    return ExportResult(out, upload / "batch.csv", upload / "task.html", private / "key.json", out / "preview.html",
                        len(chosen), attention_checks, warnings)


def _readme(study: str, raters: int, base: str | None, n_rows: int) -> str:
    return f"""egobench crowd study export ({study} study, {n_rows} batch rows)

upload/            everything the workers can see; contains no method or run names
  task.html        paste into the requester site: Create > New Project > (Other) > Design Layout > Source
  batch.csv        Publish Batch > upload this file (one HIT per row)
  images/          host these files at {base or '<your --image-base-url>'} (batch.csv points there)
private/key.json   maps every item and candidate slot back to methods/runs; keep it, never upload it
preview.html       the layout filled with the first items, using the local images (open in a browser)

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


def _answer_of(row: dict[str, str], study: str, n_slots: int) -> list[str]:
    """Every answer a row carries, in whichever of MTurk's encodings it came:
    ``Answer.choice`` = value; ``Answer.choice.<value>`` = true/false
    (crowd-radio-button output flattened); ``Answer.taskAnswers`` JSON."""
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
            data = json.loads(ta)
        except json.JSONDecodeError:
            return ["?taskAnswers is not JSON"]
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
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
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
        raise DataError(f"{path}: line 1: duplicate column '{dup}'")
    field_name = "choice" if study == "action" else "aligned"
    if not any(c == f"Answer.{field_name}" or c.startswith(f"Answer.{field_name}.") or c == "Answer.taskAnswers"
               for c in header):
        raise DataError(f"{path}: line 1: no answer column (expected Answer.{field_name}[.<value>] or "
                        "Answer.taskAnswers)")
    out: list[Judgment] = []
    stats = {"rows": 0, "rejected": 0}
    seen: dict[tuple[str, str], int] = {}
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
        status = row.get("AssignmentStatus", "").strip()
        if status == "Rejected":
            stats["rejected"] += 1
            continue
        worker = row["WorkerId"].strip()
        item = row["Input.item_id"].strip()
        if not worker:
            raise DataError(f"{path}: line {start}: empty WorkerId")
        if item not in items:
            raise DataError(f"{path}: line {start}: item '{item}' is not in the key (results of another batch?)")
        answers = _answer_of(row, study, n_slots)
        bad = [a for a in answers if a.startswith("?")]
        if bad:
            raise DataError(f"{path}: line {start}: unexpected answer '{bad[0][1:]}'")
        if not answers:
            raise DataError(f"{path}: line {start}: no answer (incomplete assignment)")
        if len(answers) > 1:
            raise DataError(f"{path}: line {start}: more than one answer ({', '.join(answers)})")
        if (worker, item) in seen:
            raise DataError(f"{path}: line {start}: worker {worker} answered item {item} twice "
                            f"(also line {seen[(worker, item)]})")
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


def _plurality(choices: list[str]) -> set[str]:
    if not choices:
        return set()
    c = Counter(choices)
    top = max(c.values())
    return {k for k, v in c.items() if v == top}


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
    """Win rates (or aligned rates), kappa and rater statistics from parsed judgments."""
    study = key["study"]["type"]
    items = key["items"]
    by_worker: dict[str, list[Judgment]] = defaultdict(list)
    for j in judgments:
        by_worker[j.worker].append(j)
    # attention checks
    excluded = []
    att_rate: dict[str, float | None] = {}
    for w, js in by_worker.items():
        att = [j for j in js if items[j.item]["kind"] == "attention"]
        rate = (sum(j.answer == items[j.item]["expected"] for j in att) / len(att)) if att else None
        att_rate[w] = rate
        if rate is not None and rate < min_attention:
            excluded.append(w)
    kept = [j for j in judgments if j.worker not in set(excluded) and items[j.item]["kind"] == "study"]

    per_item: dict[str, list[str]] = defaultdict(list)
    for j in kept:
        per_item[j.item].append(j.answer)

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
        rows = [ans for ans in per_item.values() if len(ans) == k_raters]
        M = np.array([[ans.count(c) for c in cats] for ans in rows])
        kappa, k_items = fleiss_kappa(M), len(rows)

    raters = []
    for w in sorted(by_worker):
        js = [j for j in by_worker[w] if items[j.item]["kind"] == "study"]
        agree = []
        for j in js:
            others = list(per_item.get(j.item, []))
            if w not in excluded:
                others.remove(j.answer)  # leave-one-out: the majority of the other raters
            top = _plurality(others)
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


def import_amt(
    results: str | os.PathLike, key_path: str | os.PathLike, out: str | os.PathLike | None = None, *,
    min_attention: float = 1.0, seed: int = 0, n_boot: int = 2000,
) -> tuple[StudyResult, Path | None]:
    """Parse ``results`` with ``key_path``; write ``userstudy.json/csv``, ``raters.csv`` and
    ``winrate.svg`` under ``out`` when given."""
    key = read_json(key_path)
    if not isinstance(key, dict) or "study" not in key or "items" not in key:
        raise DataError(f"{key_path}: not an egobench study key")
    judgments, stats = read_results(results, key)
    res = analyze(judgments, key, min_attention=min_attention, seed=seed, n_boot=n_boot)
    res.stats = stats
    if out is None:
        return res, None
    out = Path(out)
    rec = res.record()
    rec["results_file"] = Path(results).name
    atomic_write_json(out / "userstudy.json", rec)
    lines = [["method", "rate", "ci_low", "ci_high", "votes"]]
    for m, r in res.rates.items():
        lines.append([m, f"{r['rate']:.2f}", f"{r['ci_low']:.2f}", f"{r['ci_high']:.2f}", str(r["votes"])])
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(lines)
    atomic_write_text(out / "userstudy.csv", buf.getvalue())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["worker", "judgments", "attention_checks", "attention_pass_rate", "agreement_with_majority",
                "excluded"])
    for r in res.raters:
        w.writerow([r["worker"], r["judgments"], r["attention_checks"],
                    "" if r["attention_pass_rate"] is None else f"{r['attention_pass_rate']:.3f}",
                    "" if r["agreement_with_majority"] is None else f"{r['agreement_with_majority']:.3f}",
                    int(r["excluded"])])
    atomic_write_text(out / "raters.csv", buf.getvalue())
    from reports.plots import bar_chart_svg

    labels = list(res.rates)
    title = ("User study: win rate" if res.study == "action" else "Description study: aligned") + f" ({res.dataset})"
    svg = bar_chart_svg(labels, [res.rates[m]["rate"] for m in labels], [res.rates[m]["ci_low"] for m in labels],
                        [res.rates[m]["ci_high"] for m in labels], title=title, unit="%", vmax=100.0)
    atomic_write_text(out / "winrate.svg", svg)
    return res, out


def load_userstudy(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``userstudy.json`` (for Table 3)."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("egobench_userstudy") != 1 or "methods" not in data:
        raise DataError(f"{path}: not an egobench user-study result (made by egobench import-amt)")
    return data


def format_summary(res: StudyResult) -> str:
    lines = [f"{res.study} study on {res.dataset}: {res.n_judgments} judgments on {res.n_items} items"]
    for m, r in sorted(res.rates.items(), key=lambda kv: -kv[1]["rate"]):
        lines.append(f"  {m:<24} {r['rate']:6.2f}%  [{r['ci_low']:.2f}, {r['ci_high']:.2f}]  ({r['votes']} votes)")
    k = "n/a" if res.kappa is None or math.isnan(res.kappa) else f"{res.kappa:.3f}"
    lines.append(f"Fleiss' kappa {k} over {res.kappa_items} items with {res.kappa_raters} raters each")
    if res.excluded:
        lines.append(f"excluded {len(res.excluded)} rater(s) failing attention checks: {', '.join(res.excluded)}")
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
