"""File helpers: atomic writes and strict readers with one-line errors.

Every file egobench writes goes through a temporary file in the same folder
followed by ``os.replace``, so a killed process never leaves half a file under
the final name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import DataError, DiskFullError, UserError, disk_full_message

TMP_PREFIX = ".tmp-egobench-"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; on success rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(disk_full_message(path.parent)) from None
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def clean_stale_temps(folder: str | os.PathLike) -> int:
    """Remove temp files left by a killed writer under ``folder``; return the count."""
    n = 0
    folder = Path(folder)
    if not folder.exists():
        return 0
    for p in folder.rglob(TMP_PREFIX + "*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


#: Deepest nesting of arrays/objects a JSON file egobench reads may have.
#: Every file format egobench reads needs fewer than 10 levels; the limit
#: turns a hostile file into a one-line error instead of a RecursionError.
JSON_MAX_DEPTH = 64


class _DuplicateKey(ValueError):
    pass


def _json_depth_error(text: str, max_depth: int) -> tuple[int, int] | None:
    """(line, column) where nesting first exceeds ``max_depth``, or None.

    A linear scan that skips string contents; run before ``json.loads`` so the
    parser never recurses deeper than the limit.
    """
    depth = 0
    in_str = False
    escaped = False
    line = 1
    line_start = 0
    for i, ch in enumerate(text):
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return line, i - line_start + 1
        elif ch in "]}":
            depth -= 1
        elif ch == "\n":
            line += 1
            line_start = i + 1
    return None


def _key_line(text: str, key: str) -> int | None:
    """1-based line of the second occurrence of ``"key":`` in ``text`` (best effort)."""
    needle = json.dumps(key, ensure_ascii=False)
    first = text.find(needle)
    second = text.find(needle, first + 1) if first >= 0 else -1
    return text.count("\n", 0, second) + 1 if second >= 0 else None


def loads_strict(text: str, source: str = "<json>", max_depth: int = JSON_MAX_DEPTH) -> Any:
    """``json.loads`` that refuses duplicate object keys and deep nesting.

    Errors are one-line :class:`DataError` naming ``source``, the line and the
    key (a duplicate key in JSON silently keeps only the last value, which
    would drop data without a word).
    """
    def too_deep() -> DataError:
        where = _json_depth_error(text, max_depth) or (1, 1)  # the text scan only runs on this error path
        return DataError(
            f"{source}:{where[0]}:{where[1]}: JSON nested deeper than {max_depth} levels; "
            "this is not a file egobench writes or reads"
        )

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise _DuplicateKey(k)
            out[k] = v
        return out

    try:
        value = json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        raise too_deep() from None
    except _DuplicateKey as e:
        key = str(e.args[0])
        line = _key_line(text, key)
        at = f":{line}" if line else ""
        raise DataError(
            f"{source}{at}: duplicate key {truncate(key)!r} (JSON keeps only the last one; "
            "merge the two entries)"
        ) from None
    except json.JSONDecodeError as e:
        raise DataError(f"{source}:{e.lineno}:{e.colno}: malformed JSON ({e.msg})") from None
    # depth of the parsed value, iteratively (no recursion, linear in the number of containers)
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > max_depth:
                raise too_deep()
            children = node.values() if isinstance(node, dict) else node
            stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return value


def read_json(path: str | os.PathLike, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """Read JSON strictly; a missing or malformed file is a one-line DataError naming it.

    Duplicate keys and nesting deeper than ``max_depth`` are errors (see
    :func:`loads_strict`).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, expected a JSON file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    return loads_strict(text, str(path), max_depth)


def truncate(value: Any, limit: int = 80) -> str:
    """``str(value)`` cut to ``limit`` characters for error messages."""
    s = value if isinstance(value, str) else repr(value)
    return s if len(s) <= limit else s[: limit - 15] + f"... ({len(s)} chars)"


_UNSAFE_COMPONENT = re.compile(r"[^A-Za-z0-9._+=-]+")


def safe_component(name: str, what: str = "name", max_len: int = 120) -> str:
    """The one sanitiser for user strings that become a path component.

    Keeps letters, digits and ``. _ + = -``; every other run of characters
    (``/``, ``\\``, spaces, control characters, ...) becomes ``_``. The result is
    never empty, never ``.``/``..``, never starts with ``.`` or ``-`` (no hidden
    files, no option look-alikes) and is at most ``max_len`` characters, so
    joining it to a folder can never leave that folder.
    """
    if not isinstance(name, str) or not name.strip():
        raise UserError(f"empty {what}: give a non-empty {what}")
    out = _UNSAFE_COMPONENT.sub("_", name.strip())
    out = out.lstrip(".-_") or "_"
    if len(out) > max_len:
        out = out[: max_len - 11] + "-" + hashlib.sha256(name.encode()).hexdigest()[:10]
    if out in {".", ".."}:  # pragma: no cover - lstrip removes leading dots
        out = "_"
    return out


def safe_join(root: str | os.PathLike, *parts: str) -> Path:
    """``root / parts...`` after checking the result stays inside ``root``."""
    root = Path(root)
    out = root.joinpath(*parts)
    base = os.path.realpath(root)
    real = os.path.realpath(out)
    if real != base and not real.startswith(base.rstrip(os.sep) + os.sep):
        raise UserError(f"{out}: path leaves {root}; refusing to write there")
    return out


_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """Neutralise a CSV cell that a spreadsheet would run as a formula.

    Strings starting with ``= + - @``, tab or carriage return get a leading
    apostrophe (the OWASP recommendation); numbers and other values pass
    unchanged, so numeric columns stay numeric. Every CSV egobench writes
    passes its cells through this.
    """
    if isinstance(value, str) and value.startswith(_CSV_FORMULA_START):
        return "'" + value
    return value


def csv_row(values: Iterable[Any]) -> list[Any]:
    return [csv_cell(v) for v in values]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
