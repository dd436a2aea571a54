"""``egobench ablate``: ablation tables of registered methods, run resumably.

The tables are data: each comes from the ``egobench.ablations`` entry-point
group (the entry point's name is its ``--table`` key; the LEGO paper's Tables 3
and 4 are declared by ``lego.ablations``). A table has a title and rows; a row
names a registered method, its options, and whether it reads the ablation's
shared VLLM features (``features: true``: ``--features-root`` /
``--compute-features`` become its ``features_root`` / ``compute_features``
options). egobench knows no method name here.

VLLM features are computed once per sample into one feature root and read by
every variant that takes them. Each row is an ordinary resumable run, so a
killed ablation resumes where it stopped. The tables are written as Markdown
and JSON next to the runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, UserError
from .io import atomic_write_json, atomic_write_text, safe_component, safe_join
from .keywords import split_keywords, takes_fields
from .registry import Registry
from .run_spec import RunOptions, RunSpec

if TYPE_CHECKING:
    from .protocol import Protocol
    from .runner import RunResult

#: the ablation tables, by ``--table`` key (entry point name -> a mapping parsed as :class:`AblationTable`)
ABLATIONS: Registry[Any] = Registry("ablation table", entry_point_group="egobench.ablations")


@dataclass(frozen=True)
class AblationRow:
    """One row: ``method`` (a registered name) run with ``options``."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    #: the row reads the ablation's shared VLLM features (features_root / compute_features options)
    features: bool = False


@dataclass(frozen=True)
class AblationTable:
    title: str
    rows: tuple[AblationRow, ...]


def table_keys() -> list[str]:
    """The registered tables' keys, numbers in numeric order (``--table`` choices; nothing is imported)."""
    return sorted(ABLATIONS.names(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))


def ablation_table(key: int | str) -> AblationTable:
    """Table ``key`` from the registry, checked (unknown keys and wrong types name where it came from)."""
    key = str(key)
    data = ABLATIONS.get(key)
    if isinstance(data, AblationTable):
        table = data
    else:
        from .config import from_dict

        table = from_dict(AblationTable, data, f"ablation table {key} ({ABLATIONS.registered_from(key)})")
    if not table.rows:
        raise ConfigError(f"ablation table {key} ({ABLATIONS.registered_from(key)}) has no rows")
    return table


@dataclass
class AblationResult:
    out: Path
    #: the runs of each table that was run, by key: ``[(row label, run result), ...]``
    tables: dict[str, list[tuple[str, RunResult]]] = field(default_factory=dict)
    #: every registered table's key in order, with its title ("" for a table not run)
    titles: dict[str, str] = field(default_factory=dict)

    def rows(self, key: int | str) -> list[tuple[str, RunResult]]:
        return self.tables.get(str(key), [])

    #: ``--prompts``: each row's prompt template, by row label (a column of the table)
    prompts: dict[str, str] = field(default_factory=dict)

    def markdown(self) -> str:
        return "\n".join(_markdown(self.titles[k], self.tables.get(k, []), self.prompts) for k in self.titles)


def _cell(text: str) -> str:
    """A Markdown table cell: one line, pipes escaped (labels, templates and titles may hold any text)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _markdown(title: str, rows: list[tuple[str, RunResult]], prompts: dict[str, str] | None = None) -> str:
    from .evaluator import NOT_COMPARABLE, format_value, metric_heads

    if not rows:
        return ""
    metrics = rows[0][1].metrics
    names = list(metrics)
    extra = ["prompt"] if prompts else []
    head = "| row | method | " + "".join(f"{h} | " for h in extra) + " | ".join(metric_heads(metrics)) + " |"
    lines = [f"### {_cell(title)}", "", head, "|" + "---|" * (len(names) + 2 + len(extra))]
    for label, res in rows:
        cells = [format_value(res.metrics[n]) for n in names]
        method = res.run_dir.parts[-2]
        shown = [f"`{_cell(prompts.get(label, '')).replace('`', '')}`"] if prompts else []
        lines.append(f"| {_cell(label)} | {_cell(method)} | " + "".join(f"{c} | " for c in shown)
                     + " | ".join(cells) + " |")
    proto = rows[0][1].protocol
    lines += ["", f"protocol {proto.name} v{proto.version} ({proto.short_hash}); x100 except PSNR (dB) and FID"]
    if not all(r.comparable for _, r in rows):
        lines.append(NOT_COMPARABLE)
    return "\n".join(lines) + "\n"


def _claim_tables_dir(out_dir: Path, identity: dict[str, Any]) -> None:
    """Refuse to replace the tables of another ablation (other protocol, data selection, tables)."""
    from .io import read_json

    prev = out_dir / "tables.json"
    if not prev.is_file():
        return
    old = read_json(prev)
    old_identity = old.get("identity") if isinstance(old, dict) else None
    if old_identity is not None and old_identity != identity:
        keys = sorted(k for k in set(old_identity) | set(identity) if old_identity.get(k) != identity.get(k))
        raise UserError(f"{out_dir}: holds the tables of another ablation (differs in {', '.join(keys)}); "
                        "choose another --out or remove that folder")


#: the keywords of :func:`egobench.run` an ablation takes (with their defaults there) and passes to every
#: row's run, except ``out``: the folder of the ablation's tables (default: under ``runs_dir``)
RUN_KEYWORDS = ("protocol", "data_root", "limit", "batch_size", "runs_dir", "out", "zoo", "weights", "device",
                "weights_lock", "progress")


@dataclass(frozen=True)
class _Runs:
    """An ablation's run keywords, resolved: its protocol, its tables' folder and what every row's run takes."""

    spec: RunSpec  # its ``out`` is the tables' folder
    protocol: Protocol
    run: dict[str, Any]  # keywords of egobench.runner.run for every row

    @classmethod
    def of(cls, kwargs: dict[str, Any], what: str) -> _Runs:
        from .protocol import as_protocol

        spec, opts = split_keywords(kwargs, RunSpec, RunOptions, what=what, allowed=RUN_KEYWORDS)
        proto = as_protocol(spec.protocol)
        given = {**vars(spec), **vars(opts), "protocol": proto}
        return cls(spec, proto, {k: given[k] for k in RUN_KEYWORDS if k != "out"})

    def identity(self, dataset: str) -> dict[str, Any]:
        """What every ablation's identity starts with (its tables are refused over another's)."""
        return {"dataset": dataset, "protocol": self.protocol.hash, "limit": self.spec.limit, "zoo": self.spec.zoo}

    def out_dir(self, dataset: str, leaf: str) -> Path:
        """``out``, or ``<runs_dir>/<dataset>/<protocol>/<leaf>[-limitN]`` (a limited ablation never writes
        over the full one's tables; its runs have their own directories too: the run id includes the
        ``--limit`` selection)."""
        if self.spec.out:
            return Path(self.spec.out)
        if self.spec.limit is not None:
            leaf += f"-limit{int(self.spec.limit)}"
        return safe_join(Path(self.spec.runs_dir), safe_component(dataset, "dataset name"),
                         safe_component(self.protocol.name, "protocol name"), leaf)


@takes_fields(RunSpec, RunOptions, only=RUN_KEYWORDS)
def ablate(dataset: str, *, features_root: str | os.PathLike | None = None, compute_features: bool = False,
           tables: Sequence[int | str] | None = None, **kwargs: Any) -> AblationResult:
    """Run the rows of the ablation ``tables`` (default: every registered table) and write them; the other
    keywords are the :data:`RUN_KEYWORDS`."""
    runs = _Runs.of(kwargs, "ablate")
    wanted = {str(t) for t in (tables if tables is not None else table_keys())}
    keys = [k for k in table_keys() if k in wanted]
    for k in sorted(wanted - set(keys)):
        ABLATIONS.get(k)  # an unknown key: one line with "did you mean"
    chosen = {k: ablation_table(k) for k in keys}  # every table checked before any run starts
    identity = {**runs.identity(dataset), "features_root": str(features_root) if features_root is not None else None,
                "tables": [int(k) if k.isdigit() else k for k in keys]}
    out_dir = runs.out_dir(dataset, "ablation")
    _claim_tables_dir(out_dir, identity)
    shared: dict[str, Any] = {}  # the options of the rows that read the shared VLLM features
    if features_root is not None:
        shared["features_root"] = str(features_root)
        if compute_features:
            shared["compute_features"] = True
    # every registered table has its place in the Markdown (an empty one when not run)
    result = AblationResult(out_dir, titles={k: chosen[k].title if k in chosen else "" for k in table_keys()})
    return _run_tables(result, chosen, dataset, identity, runs.run, shared)


def _run_tables(result: AblationResult, chosen: dict[str, AblationTable], dataset: str, identity: dict[str, Any],
                common: dict[str, Any], shared: dict[str, Any]) -> AblationResult:
    """Run every row of ``chosen`` (each an ordinary resumable run), then write tables.md and tables.json."""
    from .runner import run

    for key, table in chosen.items():
        done = result.tables.setdefault(key, [])
        for row in table.rows:
            options = {**(shared if row.features else {}), **row.options}
            done.append((row.label, run(row.method, dataset, method_options=options, **common)))
    out_dir = result.out
    atomic_write_text(out_dir / "tables.md", result.markdown())
    atomic_write_json(out_dir / "tables.json", {
        "identity": identity,
        **{f"table{k}": [{"row": label, "run": str(r.run_dir),
                          "metrics": {m: v.get("value") for m, v in r.metrics.items()}} for label, r in rows]
           for k, rows in result.tables.items() if rows},
    })
    return result


#: ``egobench ablate --prompts``: the text one editor is given, as ``-o prompt=TEMPLATE`` over the sample's
#: fields. The action label (Ego4D's "#C C" stripped), LEGO's enriched description of the action frame, and an
#: imperative instruction in the style InstructPix2Pix-family editors were trained on
PROMPT_ROWS: tuple[tuple[str, str], ...] = (
    ("action label", "{action}"),
    ("enriched description", "{description}"),
    ("templated instruction", "make the hands {verb} the {noun}"),
)
PROMPTS_KEY = "prompts"


def _check_takes_prompt(method: str, method_cls: type, options: dict[str, Any]) -> None:
    """The method must take a prompt template (``-o prompt=``), and the ablation sets it, not the user."""
    import dataclasses

    options_class = getattr(method_cls, "options_class", None)
    fields = {f.name for f in dataclasses.fields(options_class)} if dataclasses.is_dataclass(options_class) else set()
    if "prompt" not in fields:
        raise ConfigError(f"method '{method}' takes no prompt template (-o prompt=TEMPLATE), so its prompts cannot "
                          "be ablated; use an editor (diffusers-edit or a preset: egobench methods)")
    if "prompt" in options:
        raise ConfigError(f"method '{method}': -o prompt= is what --prompts varies; drop it")


@takes_fields(RunSpec, RunOptions, only=RUN_KEYWORDS)
def prompt_ablation(method: str, dataset: str, *, method_options: dict[str, Any] | None = None,
                    templates: Sequence[tuple[str, str]] = PROMPT_ROWS, **kwargs: Any) -> AblationResult:
    """``egobench ablate --prompts --method M``: ``method`` run once per prompt template (default
    :data:`PROMPT_ROWS`: action label, enriched description, templated instruction), as one table. Every
    option and template is checked before any run starts; each row is an ordinary resumable run. The other
    keywords are the :data:`RUN_KEYWORDS`."""
    from .runner import resolve_method

    runs = _Runs.of(kwargs, "prompt_ablation")
    base = dict(method_options or {})
    method_cls = resolve_method(method)
    _check_takes_prompt(method, method_cls, base)
    if not templates:
        raise ConfigError("--prompts: no prompt templates to compare")
    labels = [label for label, _ in templates]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--prompts: two rows share a label ({', '.join(labels)})")
    rows = tuple(AblationRow(label=label, method=method, options={**base, "prompt": template})
                 for label, template in templates)
    for row in rows:
        method_cls.validate_options(dict(row.options))  # a bad template (unknown field) fails before any run
    table = AblationTable(title=f"Prompts: {method} with the action label, the enriched description and an "
                                "instruction", rows=rows)
    identity = {**runs.identity(dataset), "method": method, "options": base,
                "prompts": [list(t) for t in templates]}
    out_dir = runs.out_dir(dataset, f"prompts-{safe_component(method.replace(':', '-'), 'method name')}")
    _claim_tables_dir(out_dir, identity)
    result = AblationResult(out_dir, titles={PROMPTS_KEY: table.title})
    result.prompts = {label: template for label, template in templates}
    return _run_tables(result, {PROMPTS_KEY: table}, dataset, identity, runs.run, {})
