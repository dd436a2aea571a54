"""Results bundles: numbers that travel with everything needed to check them.

``egobench export-results RUN... --out bundle/`` writes ``bundle/results.json`` in the versioned
format of ``schema/results-v1.json`` (shipped in this package as ``egobench/schema``): per run its
method (zero-shot or finetuned), protocol name/version/hash, split fingerprint, the weights lock
digest and every artifact's file digests, package versions, each metric's value with a 95%
percentile bootstrap interval over the scored samples, and optionally per-sample values
(``--per-sample``) and the generated images (``--images``, copied under safe names).
``egobench validate-results FILE`` checks a bundle from anyone: the schema (an error names the
JSON path), that the protocol hash is a known protocol's, with ``--dataset`` that the split
fingerprint matches the local split, with ``--weights-lock`` that the weights match a lock. Runs
from ``evaluate`` (images from outside code) export the same way. The JSON Schema library
(``jsonschema``) does the schema check; the rest is egobench's own records.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import click

from .errors import DataError, UserError
from .io import atomic_write_text, read_json, safe_component, safe_join, truncate
from .run_folder import RunFolder, read_run_folder, vllm_finetuned

FORMAT = "egobench-results"
FORMAT_VERSION = 1
SCHEMA_NAME = "results-v1.json"
RESULTS_FILE = "results.json"
#: bootstrap resamples and seed of every interval (as the report tables)
N_BOOT = 1000
BOOT_SEED = 0
INTERVAL_METHOD = "percentile bootstrap of the mean over the scored samples"
#: a results.json larger than this is refused before parsing (per-sample values of a full split are ~10 MB)
MAX_BUNDLE_BYTES = 512 * 1024 * 1024
#: image files a bundle may carry (by their first bytes), and the extension they get
IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"RIFF", "webp"))
MAX_IMAGE_BYTES = 32 * 1024 * 1024


def schema_path() -> Path:
    """The shipped schema file (``schema/`` at the repository root links to the same folder)."""
    return Path(str(resources.files("egobench") / "schema" / SCHEMA_NAME))


@functools.lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return json.loads(schema_path().read_text(encoding="utf-8"))


# --- numbers ------------------------------------------------------------------------------------


def json_number(v: Any) -> float | str | None:
    """A float for JSON: inf/-inf/nan become the strings the schema allows (JSON has no such numbers)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f


def as_float(v: Any) -> float | None:
    """The inverse of :func:`json_number` (None stays None)."""
    if v is None:
        return None
    return float(v)  # float("inf"), float("nan") parse the strings


def bootstrap_interval(x: Sequence[float], n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> tuple[float, float] | None:
    """95% percentile bootstrap interval of the mean of ``x`` (the method of the report tables:
    ``n_boot`` resamples of the samples with replacement). None with fewer than 2 values or a
    non-finite one (PSNR of an exact copy is inf: the mean has no interval)."""
    import numpy as np

    a = np.asarray(list(x), dtype=float)
    if len(a) < 2 or not np.isfinite(a).all():
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(a), size=(n_boot, len(a)))
    lo, hi = np.percentile(a[draws].mean(1), [2.5, 97.5])
    return float(lo), float(hi)


# --- export -------------------------------------------------------------------------------------


def _utc(t: Any) -> str | None:
    return t if isinstance(t, str) and len(t) == 20 and t.endswith("Z") else None


def training_flag(manifest: dict[str, Any]) -> str:
    """zero-shot / finetuned / unknown from the method config's ``finetuned_on_benchmark``."""
    cfg = ((manifest.get("method") or {}).get("config") or {}) if isinstance(manifest.get("method"), dict) else {}
    flag = cfg.get("finetuned_on_benchmark") if isinstance(cfg, dict) else None
    return {True: "finetuned", False: "zero-shot"}.get(flag, "unknown") if isinstance(flag, bool) else "unknown"


def _jsonable(obj: Any) -> Any:
    """Manifest values as plain JSON (options may hold paths or tuples)."""
    return json.loads(json.dumps(obj, default=str), parse_constant=lambda _: None)


def _artifacts(manifest: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rec in sorted((manifest.get("artifacts") or {}).items()):
        if not isinstance(rec, dict):
            continue
        a: dict[str, Any] = {"files": {f: {"sha256": r["sha256"], "size": int(r["size"])}
                                       for f, r in sorted((rec.get("files") or {}).items())},
                             "verified": rec.get("verified", "unverified")}
        for k in ("hf_repo", "revision", "origin", "pinned_by"):
            if rec.get(k):
                a[k] = str(rec[k])
        if "tiny" in rec:
            a["tiny"] = bool(rec["tiny"])
        out[str(name)] = a  # the local path is left out: it says where, not what
    return out


def _environment(manifest: dict[str, Any]) -> dict[str, Any]:
    env = manifest.get("environment") if isinstance(manifest.get("environment"), dict) else {}
    out = {k: str(env[k])[:200] for k in ("egobench", "python", "platform", "device", "git_commit") if env.get(k)}
    out["packages"] = {str(k): str(v)[:200] for k, v in sorted((env.get("packages") or {}).items())}
    return out


def image_kind(head: bytes) -> str | None:
    """png / jpg / webp from a file's first bytes, else None."""
    for magic, ext in IMAGE_MAGIC:
        if head.startswith(magic) and (ext != "webp" or head[8:12] == b"WEBP"):
            return ext
    return None


def image_name(sample_id: str, ext: str) -> str:
    """The safe file name of a sample's image: readable, unique per sample id (hash suffix)."""
    stem = safe_component(sample_id, "sample id", 100)
    return f"{stem}-{hashlib.sha256(sample_id.encode()).hexdigest()[:10]}.{ext}"


def copy_image(src: Path, dst_dir: Path, sample_id: str) -> str | None:
    """Copy one image file (a regular file that starts like a PNG, JPEG or WebP, at most
    MAX_IMAGE_BYTES) into ``dst_dir`` under :func:`image_name`; its name, or None when refused."""
    try:
        if src.is_symlink() or not src.is_file() or src.stat().st_size > MAX_IMAGE_BYTES:
            return None
        with open(src, "rb") as f:
            head = f.read(16)
    except OSError:
        return None
    ext = image_kind(head)
    if ext is None:
        return None
    name = image_name(sample_id, ext)
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, safe_join(dst_dir, name))
    return name


def _output_path(run_dir: Path, output: Any) -> Path | None:
    """A run's stored output path: relative to the run folder, or absolute (evaluate)."""
    if output is None or (isinstance(output, float) and math.isnan(output)) or not str(output):
        return None
    p = Path(str(output))
    return p if p.is_absolute() else run_dir / p


def read_run(path: str | os.PathLike) -> RunFolder:
    """A finished run's metrics, manifest and per-sample table (its provenance required: a bundle records it)."""
    return read_run_folder(path, complete=True)


def _sha(v: Any, what: str, where: Path) -> str:
    s = str(v or "")
    if len(s) != 64 or any(c not in "0123456789abcdef" for c in s):
        raise DataError(f"{where}: {what} {truncate(s)!r} is not a sha256 digest; re-run the run with this "
                        "egobench to record it")
    return s


def result_from_run(run: RunFolder, rid: str, *, per_sample: bool = False, image_root: Path | None = None,
                    n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict[str, Any]:
    """One bundle result from a run folder. ``image_root``: copy each scored sample's image to
    ``image_root/<rid>/`` (per-sample records then name it)."""
    import numpy as np

    man, met, df = run.manifest, run.metrics, run.samples
    proto = met.get("protocol") or man.get("protocol") or {}
    split = man.get("split") if isinstance(man.get("split"), dict) else {}
    fp = split.get("fingerprint") or met.get("split_fingerprint")
    method = man.get("method") if isinstance(man.get("method"), dict) else {}
    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    metrics: dict[str, Any] = {}
    for key, info in met["metrics"].items():
        if not isinstance(info, dict):
            continue
        kind = "set" if info.get("kind") == "set" else "sample"
        m: dict[str, Any] = {"metric": str(info.get("metric") or key), "kind": kind,
                             "value": json_number(info.get("value")),
                             "higher_is_better": bool(info.get("higher_is_better", True)),
                             "display_scale": float(info.get("display_scale", 1.0)), "interval": None}
        for k in ("n", "n_infinite"):
            if isinstance(info.get(k), int) and not isinstance(info.get(k), bool):
                m[k] = int(info[k])
        for k in ("version", "precision"):
            if info.get(k) is not None:
                m[k] = str(info[k])
        if isinstance(info.get("settings"), dict):
            m["settings"] = _jsonable(info["settings"])
        if kind == "set":
            m["interval_note"] = "a set metric: resampling it needs per-sample features, which runs do not keep"
        elif key not in ok.columns:
            m["interval_note"] = "no per-sample values in the run"
        else:
            x = ok[key].to_numpy(dtype=float)
            x = x[~np.isnan(x)]
            ci = bootstrap_interval(x, n_boot, seed)
            if ci is None:
                m["interval_note"] = ("infinite per-sample values (e.g. PSNR of an exact copy)"
                                      if len(x) >= 2 else "fewer than 2 scored samples")
            else:
                m["interval"] = {"low": ci[0], "high": ci[1], "level": 0.95, "method": INTERVAL_METHOD,
                                 "n_boot": n_boot, "seed": seed}
        metrics[str(key)] = m
    order = [str(k) for k in met.get("metric_order", list(metrics)) if k in metrics]
    lock = man.get("weights_lock") if isinstance(man.get("weights_lock"), dict) else None
    sel = split.get("selection") if isinstance(split.get("selection"), dict) else None
    result: dict[str, Any] = {
        "id": rid,
        "source": {"kind": "evaluate" if "images" in method and "config" not in method else "run",
                   "run_id": str(man.get("run_id") or run.path.name), "created": _utc(man.get("created")),
                   "updated": _utc(man.get("updated")), "state": str(man.get("state") or "complete")},
        "method": {"name": str(met["method"]), "training": training_flag(man),
                   "vllm_finetuned": vllm_finetuned(man), "options": _jsonable(method.get("options") or {})},
        "dataset": str(met["dataset"]),
        "protocol": {"name": str(proto.get("name")), "version": str(proto.get("version")),
                     "hash": _sha(proto.get("hash"), "protocol hash", run.path / "metrics.json")},
        "split": {"name": str(split.get("name") or met["dataset"]),
                  "fingerprint": _sha(fp, "split fingerprint", run.path / "manifest.json"),
                  "n_samples": int(split.get("n_samples") or met.get("n_samples") or 0),
                  "selection": ({k: sel[k] for k in ("limit", "n_samples", "samples") if k in sel}
                                if sel and isinstance(sel.get("limit"), int) else None)},
        "weights": {"lock": {"digest": _sha(lock.get("digest"), "weights lock digest", run.path / "manifest.json")}
                    if lock else None, "artifacts": _artifacts(man)},
        "environment": _environment(man),
        "comparable": bool(met.get("comparable", man.get("comparable", False))),
        "n_samples": int(met.get("n_samples") or 0),
        "n_scored": int(met.get("n_scored") or 0),
        "metric_order": order,
        "metrics": metrics,
    }
    if method.get("origin"):
        result["method"]["origin"] = str(method["origin"])
    if per_sample or image_root is not None:
        result["samples"] = _samples(run, df, [k for k in metrics if metrics[k]["kind"] == "sample"], rid, image_root)
    return result


def _samples(run: RunFolder, df: Any, keys: list[str], rid: str, image_root: Path | None) -> list[dict[str, Any]]:
    out = []
    for rec in df.to_dict("records"):
        sid = str(rec.get("sample_id"))
        s: dict[str, Any] = {"sample_id": sid, "status": str(rec.get("status") or "ok"),
                             "values": {k: json_number(rec.get(k)) if _present(rec.get(k)) else None
                                        for k in keys if k in rec}}
        for k in ("verb", "noun", "action"):
            if isinstance(rec.get(k), str):
                s[k] = rec[k][:4000] if k == "action" else rec[k][:200]
        if image_root is not None and s["status"] == "ok":
            src = _output_path(run.path, rec.get("output"))
            name = copy_image(src, image_root / rid, sid) if src is not None else None
            if name:
                s["image"] = f"images/{rid}/{name}"
        out.append(s)
    return out


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def result_ids(runs: Sequence[RunFolder]) -> list[str]:
    """Unique safe ids: ``<method>-<run id>`` (a counter where two runs share both)."""
    ids: list[str] = []
    for r in runs:
        base = safe_component(f"{r.metrics['method']}-{r.manifest.get('run_id') or r.path.name}", "result id", 100)
        rid, k = base, 2
        while rid in ids:
            rid, k = f"{base}-{k}", k + 1
        ids.append(rid)
    return ids


def build_bundle(runs: Sequence[str | os.PathLike], *, per_sample: bool = False, image_root: Path | None = None,
                 n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict[str, Any]:
    """The bundle document for ``runs`` (images copied under ``image_root`` when given)."""
    if not runs:
        raise UserError("give at least one run folder")
    records = [read_run(p) for p in runs]
    results = [result_from_run(r, rid, per_sample=per_sample, image_root=image_root, n_boot=n_boot, seed=seed)
               for r, rid in zip(records, result_ids(records))]
    from importlib.metadata import PackageNotFoundError, version

    try:
        ego = version("egobench")
    except PackageNotFoundError:  # pragma: no cover - a source checkout without metadata
        ego = "unknown"
    return {"format": FORMAT, "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "exported_by": {"egobench": ego, "python": platform.python_version()}, "results": results}


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


MARKER = ".egobench-bundle"


def replace_folder(out: Path, build, marker: str, what: str) -> Path:
    """Build a folder in a temporary sibling with ``build(tmp)`` and swap it in, so ``out`` is
    always either the old complete folder or the new one. An existing ``out`` is replaced only when
    it holds ``marker`` (made by this command); any other non-empty folder is refused."""
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file; give a folder for the {what}")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise UserError(f"--out {out}: folder exists and is not an egobench {what}; give a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        build(tmp)
        _public(tmp)
        (tmp / marker).write_text(f"made by egobench; replaced whole by the next {what} written here\n")
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
            os.rmdir(old)
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(out: Path) -> None:
    """Remove the temporary siblings a killed earlier call left (``.<name>.tmp-<pid>-*``,
    ``.<name>.old-<pid>-*`` of a process that is gone); a rerun then starts clean."""
    for kind in ("tmp", "old"):
        head = f".{out.name}.{kind}-"
        for p in out.parent.glob(f"{glob.escape(head)}*-*"):
            pid = p.name[len(head):].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                shutil.rmtree(p, ignore_errors=True)


def _public(folder: Path) -> None:
    """Folder and files readable as the umask allows (mkdtemp and atomic writes create them private)."""
    mask = os.umask(0)
    os.umask(mask)
    for p in [folder, *folder.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def export_results(runs: Sequence[str | os.PathLike], out: str | os.PathLike, *, per_sample: bool = False,
                   images: bool = False, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> Path:
    """Write ``out/results.json`` (and ``out/images/`` with ``images``); the path of results.json.
    The document is checked against the schema before anything is swapped in."""
    out = Path(out)

    def build(tmp: Path) -> None:
        doc = build_bundle(runs, per_sample=per_sample, image_root=(tmp / "images") if images else None,
                           n_boot=n_boot, seed=seed)
        check_schema(doc, "export-results (internal)")
        atomic_write_text(tmp / RESULTS_FILE, dumps(doc))

    replace_folder(out, build, MARKER, "results bundle")
    return out / RESULTS_FILE


# --- validation ---------------------------------------------------------------------------------


def json_path(parts: Sequence[Any]) -> str:
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and p.isidentifier():
            out += f".{p}"
        else:
            out += "[" + json.dumps(str(p)) + "]"
    return out


def check_schema(doc: Any, source: str) -> None:
    """Refuse a document that does not follow the schema: one line naming the JSON path."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    # descend into anyOf/oneOf to the most specific reason
    while err.context:
        err = jsonschema.exceptions.best_match(err.context)
    msg = " ".join(truncate(err.message, 160).split())
    raise DataError(f"{source}: schema error at {json_path(err.absolute_path)}: {msg} "
                    f"(see {SCHEMA_NAME}; {len(errors)} error(s) in all)")


@dataclass
class Bundle:
    """A loaded, schema-checked bundle: its document and the folder its image paths are relative to."""

    doc: dict[str, Any]
    path: Path  # results.json
    root: Path  # its folder
    checks: list[str] = field(default_factory=list)

    @property
    def results(self) -> list[dict[str, Any]]:
        return self.doc["results"]

    def image(self, rel: str) -> Path | None:
        """A sample image's file inside the bundle folder (None for a link, a missing file or a path
        that would leave the folder)."""
        try:
            p = safe_join(self.root, *rel.split("/"))
        except UserError:
            return None
        return p if p.is_file() and not p.is_symlink() else None


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read ``results.json`` (or a bundle folder holding one) strictly and check its schema."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    if not p.is_file():
        raise UserError(f"{path}: no {RESULTS_FILE} here; give a bundle folder or its results.json "
                        "(made by 'egobench export-results')")
    size = p.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise DataError(f"{p}: {size:,} bytes, over the limit of {MAX_BUNDLE_BYTES:,} for a results bundle")
    doc = read_json(p)
    check_schema(doc, str(p))
    ids = [r["id"] for r in doc["results"]]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise DataError(f"{p}: result id {dup[0]!r} used twice (at $.results[*].id); ids must be unique")
    for i, r in enumerate(doc["results"]):
        seen: set[str] = set()
        for j, smp in enumerate(r.get("samples") or []):
            if smp["sample_id"] in seen:
                raise DataError(f"{p}: $.results[{i}].samples[{j}].sample_id: {truncate(smp['sample_id'])!r} listed "
                                "twice in one result")
            seen.add(smp["sample_id"])
        for j, k in enumerate(r["metric_order"]):
            if k not in r["metrics"]:
                raise DataError(f"{p}: schema error at $.results[{i}].metric_order[{j}]: {truncate(k)!r} is not "
                                "a key of its metrics")
    return Bundle(doc, p, p.parent)


def known_protocols(extra: Sequence[str | os.PathLike] = ()) -> dict[str, Any]:
    """hash -> Protocol for the shipped protocols and ``extra`` protocol files."""
    from .protocol import available_protocols, load_protocol

    out = {}
    for name in [*available_protocols(), *map(str, extra)]:
        p = load_protocol(name, check_metrics=False)
        out[p.hash] = p
    return out


def check_protocol(r: dict[str, Any], where: str, known: dict[str, Any]) -> str:
    h = r["protocol"]["hash"]
    if h in known:
        p = known[h]
        return f"protocol {p.name} v{p.version} ({h[:12]}) known"
    named = [p for p in known.values() if p.name == r["protocol"]["name"]]
    hint = (f"; the known {named[0].name} v{named[0].version} has hash {named[0].hash[:12]} (its settings differ)"
            if named else "")
    raise DataError(f"{where}: unknown protocol hash {h[:12]} (protocol {truncate(r['protocol']['name'], 60)!r} "
                    f"v{truncate(r['protocol']['version'], 20)}){hint}; pass its YAML with --protocol FILE "
                    "if it is a custom protocol")


def check_split(r: dict[str, Any], where: str, dataset: str, data_root: str | None) -> str:
    from .data.datasets import load_split

    sel = r["split"].get("selection") or {}
    split = load_split(dataset, data_root, sel.get("limit"))
    if split.fingerprint != r["split"]["fingerprint"]:
        lim = f" (first {sel['limit']} samples)" if sel.get("limit") else ""
        raise DataError(f"{where}: split fingerprint mismatch on {dataset}{lim}: bundle "
                        f"{r['split']['fingerprint'][:12]}, local split {split.fingerprint[:12]}; the numbers were "
                        "made on other data (another release, other frames or annotations)")
    return f"split {dataset} {split.short_fingerprint} matches"


def check_lock(r: dict[str, Any], where: str, lock: Any) -> str:
    got = (r["weights"].get("lock") or {}).get("digest")
    if got and got != lock.digest:
        raise DataError(f"{where}: weights lock mismatch: made under lock {got[:12]}, {lock.source} is "
                        f"{lock.digest[:12]}")
    for name, rec in r["weights"]["artifacts"].items():
        if name in lock.artifacts:
            try:
                lock.check(name, {"files": rec["files"], "path": "the bundle"})
            except UserError as e:
                raise DataError(f"{where}: weights lock mismatch: {e}") from None
    if not got and not any(n in lock.artifacts for n in r["weights"]["artifacts"]):
        raise DataError(f"{where}: weights lock mismatch: no artifact of this result is in {lock.source} "
                        "(and it was not made under a lock)")
    return f"weights match lock {lock.short}"


def validate_results(path: str | os.PathLike, *, dataset: str | None = None, data_root: str | None = None,
                     protocols: Sequence[str | os.PathLike] = (), weights_lock: str | os.PathLike | None = None
                     ) -> Bundle:
    """Schema, known protocol hash, image files, and with ``dataset`` / ``weights_lock`` the split
    fingerprint and the weights. Raises a one-line DataError at the first problem; the bundle with
    one line of checks per result otherwise."""
    b = load_bundle(path)
    known = known_protocols(protocols)
    lock = None
    if weights_lock is not None:
        from .provenance import read_lock

        lock = read_lock(weights_lock)
    on_dataset = 0
    for i, r in enumerate(b.results):
        where = f"{b.path}: $.results[{i}] ({truncate(r['method']['name'], 60)})"
        done = [check_protocol(r, where, known)]
        for j, s in enumerate(r.get("samples") or []):
            if "image" not in s:
                continue
            f = b.image(s["image"])
            if f is None:
                raise DataError(f"{b.path}: $.results[{i}].samples[{j}].image: {truncate(s['image'])} is not a file "
                                "in the bundle folder")
            with open(f, "rb") as fh:
                kind = image_kind(fh.read(16))
            if kind != s["image"].rsplit(".", 1)[-1]:
                raise DataError(f"{b.path}: $.results[{i}].samples[{j}].image: {truncate(s['image'])} is not a "
                                f"{s['image'].rsplit('.', 1)[-1].upper()} image (found {kind or 'other bytes'})")
        if dataset is not None and r["dataset"] == dataset:
            on_dataset += 1
            done.append(check_split(r, where, dataset, data_root))
        if lock is not None:
            done.append(check_lock(r, where, lock))
        b.checks.append(f"{r['id']}: {r['method']['name']} on {r['dataset']}: " + "; ".join(done))
    if dataset is not None and not on_dataset:
        raise DataError(f"{b.path}: no result on dataset {truncate(dataset)!r} (datasets: "
                        + ", ".join(sorted({truncate(r['dataset'], 40) for r in b.results})) + ")")
    return b


# --- commands (registered through the ``egobench.commands`` entry-point group) -------------------


@click.command("export-results")
@click.argument("runs", nargs=-1, required=True)
@click.option("--out", required=True, help="bundle folder to write (results.json, images/)")
@click.option("--per-sample", is_flag=True, help="include every sample's metric values (needed for verb/noun filters)")
@click.option("--images", is_flag=True, help="copy each scored sample's image into the bundle (implies --per-sample)")
@click.option("--n-boot", type=click.IntRange(1), default=N_BOOT, show_default=True,
              help="bootstrap resamples per interval")
def export_results_cmd(runs: tuple[str, ...], out: str, per_sample: bool, images: bool, n_boot: int) -> None:
    """Write a results bundle (results.json, schema results-v1) from run folders."""
    path = export_results(list(runs), out, per_sample=per_sample, images=images, n_boot=n_boot)
    n = len(json.loads(path.read_text(encoding="utf-8"))["results"])
    click.echo(f"written: {path} ({n} result(s); check it with 'egobench validate-results {path}')")


@click.command("validate-results")
@click.argument("file")
@click.option("--dataset", "-d", default=None, help="check the split fingerprint against this local dataset")
@click.option("--data-root", default=None, help="where the dataset lives (as for 'egobench run')")
@click.option("--protocol", "protocols", multiple=True, metavar="FILE",
              help="a custom protocol YAML whose hash counts as known (repeatable)")
@click.option("--weights-lock", default=None, help="check every result's weights against this lock")
def validate_results_cmd(file: str, dataset: str | None, data_root: str | None, protocols: tuple[str, ...],
                         weights_lock: str | None) -> None:
    """Check a results bundle: schema, known protocol, split fingerprint (--dataset), weights (--weights-lock)."""
    b = validate_results(file, dataset=dataset, data_root=data_root, protocols=protocols, weights_lock=weights_lock)
    for line in b.checks:
        click.echo(line)
    click.echo(f"valid: {b.path} ({len(b.results)} result(s), {FORMAT} v{FORMAT_VERSION})")
