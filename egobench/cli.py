"""The ``egobench`` command line. Each command mirrors a Python API call."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from .config import EVAL_BATCH_SIZE
from .errors import UserError
from .options import click_options, key_values, option_values
from .registry import Registry
from .run_spec import COMMON_FIELDS, GENERATION_FIELDS, EvaluateOptions, RunOptions, RunSpec


class RegistryGroup(click.Group):
    """A click group whose sub-commands are one :class:`~egobench.registry.Registry`: the commands
    defined on the group plus an entry-point group (``name = "module:click_command"``), whose
    commands are loaded only when invoked, so heavy back-ends (diffusers, transformers) are not
    imported for ``--help``. A name given twice is refused; an unknown one is a one-line error
    with "did you mean"; a plugin that cannot be imported is a one-line error naming it.
    """

    def __init__(self, *args, entry_point_group: str | None = None, kind: str = "command", **kwargs):
        self.registry: Registry[click.Command] = Registry(kind, entry_point_group=entry_point_group)
        super().__init__(*args, **kwargs)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(cmd, name)
        name = name or cmd.name
        self.registry.add(name, cmd, origin="built in")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self.registry.names()

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help`` without importing the plugin commands' modules
        (their one-line help is read from source, see :func:`_plugin_short_help`)."""
        rows = []
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        for name in names:
            cmd = super().get_command(ctx, name)
            if cmd is not None:
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(limit)))
            else:
                ref = self.registry.ref(name)
                if ref is None:  # a plugin command already loaded as an object
                    rows.append((name, self.registry.get(name).get_short_help_str(limit)))
                else:
                    rows.append((name, _plugin_short_help(ref, limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, name: str):
        if name not in self.registry:
            return None
        return self.registry.get(name)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand:
            raise self.registry.unknown(click.utils.make_str(args[0])) from None


class _Group(RegistryGroup):
    """The ``egobench`` group: sub-commands from the ``egobench.commands`` entry-point group
    (see :class:`RegistryGroup`); user errors become one line and exit code 2 (traceback with --debug).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, entry_point_group="egobench.commands", **kwargs)

    def main(self, args=None, **kwargs):
        # ``--debug`` is accepted anywhere (``egobench run ... --debug``), not only before the
        # sub-command: it is moved to the front, where the group option is parsed.
        args = list(sys.argv[1:] if args is None else args)
        cut = args.index("--") if "--" in args else len(args)
        if "--debug" in args[:cut]:
            args = ["--debug"] + [a for i, a in enumerate(args) if not (a == "--debug" and i < cut)]
        quiet = "--quiet" in args[:cut]
        if quiet:
            quiet_libraries()
        _stderr_logging(quiet)
        try:
            return super().main(args, **kwargs)
        except UserError as e:  # raised before a command runs, e.g. listing commands for --help
            if not kwargs.get("standalone_mode", True):
                raise
            if "--debug" in args[:cut]:
                traceback.print_exc()
            click.echo(f"egobench: error: {e}", err=True)
            sys.exit(e.exit_code)

    def invoke(self, ctx: click.Context):
        import errno
        import signal

        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupt)
        try:
            return super().invoke(ctx)
        except UserError as e:
            if ctx.meta.get("egobench.debug"):
                traceback.print_exc()
            click.echo(f"egobench: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt as e:
            if ctx.meta.get("egobench.debug"):
                traceback.print_exc()
            saved = str(e) or "files written so far are complete (every write is atomic)"
            click.echo(f"egobench: interrupted: {saved}; rerun the same command to resume", err=True)
            ctx.exit(130)
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            if ctx.meta.get("egobench.debug"):
                traceback.print_exc()
            from .errors import disk_full_message

            folder = Path(e.filename).parent if e.filename else Path.cwd()
            click.echo(f"egobench: error: {disk_full_message(folder)}", err=True)
            ctx.exit(2)
        finally:
            if previous is signal.default_int_handler:
                signal.signal(signal.SIGINT, previous)


def _stderr_logging(quiet: bool) -> None:
    """What reaches the terminal from ``logging``: warnings and errors (errors only with --quiet).

    Without a root handler, a library's module-level ``logging.info(...)`` (open_clip does
    this) calls ``basicConfig()``, after which egobench's run-log INFO lines would also be
    printed on stderr. One root handler at WARNING keeps the terminal as Python's default
    (``lastResort``) would, and run logs stay in ``<run>/logs``.
    """
    import logging

    if logging.root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.ERROR if quiet else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    logging.root.addHandler(handler)


def quiet_libraries() -> None:
    """``--quiet``: no INFO lines, progress bars or deprecation warnings from the libraries either.

    Set through the libraries' own environment switches before they are
    imported (they are imported lazily, after this runs), plus Python's
    warnings filter; errors still print.
    """
    import logging
    import os
    import warnings

    for var, value in (("TRANSFORMERS_VERBOSITY", "error"), ("DIFFUSERS_VERBOSITY", "error"),
                       ("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
                       ("ACCELERATE_LOG_LEVEL", "error"), ("TQDM_DISABLE", "1")):
        os.environ.setdefault(var, value)
    for category in (DeprecationWarning, FutureWarning, UserWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    for name in ("transformers", "diffusers", "accelerate", "huggingface_hub", "torch", "open_clip", "PIL"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _interrupt(signum, frame) -> None:
    """First Ctrl-C: stop at the next Python step (KeyboardInterrupt, what was saved is reported).
    A second Ctrl-C while egobench is cleaning up ends the process at once."""
    import os
    import signal

    def _hard(signum, frame):
        os.write(2, b"\negobench: interrupted twice; stopping now (completed files are kept)\n")
        os._exit(130)

    signal.signal(signal.SIGINT, _hard)
    raise KeyboardInterrupt


def _module_source(module: str) -> str | None:
    """The file of ``module`` without importing it or its parent packages (``find_spec`` on a
    dotted name would import the parents): each part is looked up in the previous one's folder."""
    import importlib.machinery
    import importlib.util

    if module in sys.modules:
        return getattr(sys.modules[module], "__file__", None)
    first, *rest = module.split(".")
    spec = importlib.util.find_spec(first)  # a top-level name: nothing is imported
    for part in rest:
        if spec is None or spec.submodule_search_locations is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(part, list(spec.submodule_search_locations))
    return spec.origin if spec is not None else None


def _plugin_short_help(ref, width: int) -> str:
    """A plugin command's one-line help read from its module's source (``ast``), without
    importing the module (its imports cost seconds): the docstring of the decorated function.
    ``ref``: ``"module:attr"`` (or an entry point)."""
    import ast

    module, _, attr = getattr(ref, "value", ref).partition(":")
    try:
        origin = _module_source(module)
        if origin is None or not origin.endswith(".py"):
            raise ImportError(module)
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    except (ImportError, ValueError, OSError, SyntaxError):
        return f"(plugin command from {module})"
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == attr:
            doc = ast.get_docstring(node) or ""
            return click.Command(attr, help=doc).get_short_help_str(width) if doc else ""
    return f"(plugin command from {module})"


#: the options every command that scores a split takes (``run``, ``evaluate``, ``ablate``): the fields of
#: RunSpec and RunOptions that are not only a generating run's (flags, help and defaults declared there)
_common_run_options = click_options(RunSpec, RunOptions, only=COMMON_FIELDS)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="show tracebacks for errors")
@click.version_option(package_name="egobench")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Benchmark harness for egocentric action frame generation (LEGO task)."""
    ctx.meta["egobench.debug"] = debug


@main.command("run")
@click.option("--method", "-m", required=True, help="registered method (egobench methods)")
@click.option("--dataset", "-d", required=True, help="ego4d | epickitchens | demo")
@click_options(RunOptions, RunSpec, only=GENERATION_FIELDS)
@click.option("--seeds", default=None, metavar="S1,S2,...",
              help="one run per seed into sibling run directories, then mean +- std across seeds")
@_common_run_options
def run_cmd(method, dataset, seeds, **options):
    """Generate with a method on a dataset, then score it."""
    from .runner import run, run_seeds, seeds_table

    kwargs = option_values(options, RunSpec, RunOptions)
    seed = kwargs.pop("seed")
    if seeds is not None:
        if seed is not None:
            raise UserError("give --seed or --seeds, not both")
        try:
            seed_list = [int(x) for x in seeds.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"--seeds expects comma-separated integers, got {seeds!r}") from None
        if not seed_list:
            raise UserError("--seeds is empty")
        results = run_seeds(method, dataset, seed_list, **kwargs)
        for r in results:
            click.echo(r.table())
            click.echo("")
        click.echo(seeds_table(results))
        return
    res = run(method, dataset, seed=seed, **kwargs)
    click.echo(f"generated {res.generated} image(s), {res.present} already present"
               + (f", {res.failed} failed" if res.failed else ""))
    click.echo(res.table())


@main.command("evaluate")
@click.option("--images", required=True, help="folder of generated images (<clip>/<action>/<file> or <sample_id>.<ext>)")
@click.option("--dataset", "-d", required=True)
@click_options(EvaluateOptions)
@_common_run_options
def evaluate_cmd(images, dataset, **options):
    """Score a folder of images produced by outside code."""
    from .runner import evaluate

    res = evaluate(images, dataset, **option_values(options, EvaluateOptions, RunSpec, RunOptions))
    click.echo(res.table())


class _AblationTables(click.Choice):
    """``--table`` choices: the keys of the registered ablation tables (``egobench.ablations``
    entry points), read when needed (entry-point names only: nothing is imported)."""

    def __init__(self) -> None:
        super().__init__((), case_sensitive=True)

    @property
    def choices(self) -> tuple[str, ...]:
        from .ablate import table_keys

        return tuple(table_keys())

    @choices.setter
    def choices(self, value) -> None:  # click.Choice.__init__ assigns; the registry is the source
        pass


@main.command("ablate")
@click.option("--dataset", "-d", required=True)
@click.option("--features-root", default=None, help="VLLM features (release layout) shared by every variant")
@click.option("--compute-features", is_flag=True, help="compute missing VLLM features once, into --features-root")
@click.option("--table", "tables", type=_AblationTables(), multiple=True, help="only these tables")
@click.option("--prompts", is_flag=True, help="one editor (--method) with the action label, the enriched description "
              "and a templated instruction as its prompt, as one table")
@click.option("--method", "-m", default=None, help="the editor of --prompts (takes -o prompt=TEMPLATE)")
@click_options(RunSpec, RunOptions, only=("method_options", "batch_size"),
               change={"method_options": {"help": "an option of the --prompts method (repeatable)"},
                       "batch_size": {"help": None}})
@_common_run_options
def ablate_cmd(dataset, features_root, compute_features, tables, prompts, method, **options):
    """Run the conditioning ablations (paper Tables 3 and 4), or --prompts for one editor, resumably."""
    from .ablate import ablate, prompt_ablation

    given_options = options.pop("method_options")
    common = option_values(options, RunSpec, RunOptions)
    if prompts:
        if not method:
            raise UserError("--prompts needs --method M: an editor that takes -o prompt=TEMPLATE (egobench methods)")
        if tables or features_root or compute_features:
            raise UserError("--prompts runs one method's prompt table; drop --table / --features-root")
        res = prompt_ablation(method, dataset, method_options=key_values(given_options), **common)
    else:
        if method or given_options:
            raise UserError("--method and -o belong to --prompts")
        if compute_features and not features_root:
            raise UserError("--compute-features needs --features-root DIR (where the features are written)")
        res = ablate(dataset, features_root=features_root, compute_features=compute_features,
                     tables=tuple(tables) or None, **common)
    click.echo(res.markdown())
    click.echo(f"tables: {res.out / 'tables.md'}")


@main.command("methods")
def methods_cmd():
    """List the registered methods."""
    from .methods import METHODS

    for name in METHODS.names():
        try:
            cls = METHODS.get(name)
            summary = getattr(cls, "summary", "") or (cls.__doc__ or "").strip().split("\n")[0]
            kind = "bound" if getattr(cls, "is_bound", False) else "method"
        except UserError as e:
            summary, kind = f"(cannot load: {e})", "broken"
        click.echo(f"{name:<16} {kind:<7} {summary}  [{METHODS.registered_from(name)}]")


@main.command("metrics")
def metrics_cmd():
    """List the registered metrics: what each needs and which direction is better."""
    from .metrics import LISTING_KEYS, METRICS
    from .protocol import available_protocols, load_protocol

    columns: dict[str, list[str]] = {}
    for pname in available_protocols():
        for spec in load_protocol(pname, check_metrics=False).metrics:
            cols = columns.setdefault(spec.metric, [])
            if spec.name not in cols:
                cols.append(spec.name)
    n_cols = sum(len(v) for v in columns.values())
    click.echo(f"{len(METRICS.names())} metrics; the shipped protocols score {n_cols} columns with them "
               "(a metric can give several columns, e.g. blip -> blip-b, blip-l)")
    for name in METRICS.names():
        d = METRICS.describe(name, LISTING_KEYS)
        direction = "higher is better" if d["higher_is_better"] else "lower is better"
        used = f"  columns: {', '.join(columns[name])}" if name in columns else ""
        click.echo(f"{name:<12} {d['kind']:<6} needs {'+'.join(d['needs']):<28} {direction}  v{d['version']}{used}")


@main.command("protocols")
def protocols_cmd():
    """List the shipped protocols."""
    from .protocol import available_protocols, load_protocol

    for name in available_protocols():
        p = load_protocol(name, check_metrics=False)  # listing only: no metric module (torch) import
        click.echo(f"{p.name:<16} v{p.version:<5} {p.short_hash}  metrics: {', '.join(m.name for m in p.metrics)}")


@main.command("datasets")
def datasets_cmd():
    """List the registered datasets."""
    from .data import DATASETS

    for name in DATASETS.names():
        doc = (DATASETS.get(name).__doc__ or "").strip().split("\n")[0]
        click.echo(f"{name:<14} {doc}")


@main.group("data")
def data_group():
    """Inspect splits."""


@data_group.command("verify")
@click.option("--dataset", "-d", required=True)
@click.option("--data-root", default=None)
def data_verify_cmd(dataset, data_root):
    """Check that every referenced frame exists and decodes; print counts and the fingerprint."""
    from .data.verify import verify

    rep = verify(dataset, data_root)
    click.echo(rep.summary())
    if not rep.ok:
        sys.exit(1)


@main.group("prepare")
def prepare_group():
    """Derive test pairs from raw annotations and write the LEGO release layout."""


@prepare_group.command("epickitchens")
@click.option("--annotations", required=True, help="EPIC_100_validation.csv")
@click.option("--frames", required=True, help="root of the released rgb_frames")
@click.option("--out", required=True, help="output LEGO-layout folder")
@click.option("--limit", type=int, default=None)
@click.option("--quiet", is_flag=True, help="no progress bar")
def prepare_epic_cmd(annotations, frames, out, limit, quiet):
    """EPIC-KITCHENS-100: input at start - 0.25 s, target at start + 0.6 (stop - start)."""
    from .data.prepare import prepare_epickitchens

    rep = prepare_epickitchens(Path(annotations), Path(frames), Path(out), limit=limit, progress=not quiet)
    click.echo(rep.summary())


@prepare_group.command("ego4d")
@click.option("--annotations", required=True, help="fho_main.json (v2)")
@click.option("--videos", required=True, help="folder of full-scale <video_uid>.mp4")
@click.option("--out", required=True, help="output LEGO-layout folder")
@click.option("--limit", type=int, default=None)
@click.option("--quiet", is_flag=True, help="no progress bar")
def prepare_ego4d_cmd(annotations, videos, out, limit, quiet):
    """Ego4D FHO: input at PRE-15, target at PNR."""
    from .data.prepare import prepare_ego4d

    rep = prepare_ego4d(Path(annotations), Path(videos), Path(out), limit=limit, progress=not quiet)
    click.echo(rep.summary())


@main.group("weights")
def weights_group():
    """The weights registry (offline unless you ask to download)."""


@weights_group.command("list")
@click.option("--zoo", type=click.Choice(["real", "tiny"]), default="real", show_default=True)
def weights_list_cmd(zoo):
    """List artifacts, their sources, licenses and where they were found."""
    from .errors import MissingArtifactError
    from .weights import ARTIFACTS, WeightStore, default_tiny_root

    store = WeightStore(zoo="real")
    for name in ARTIFACTS.names():
        art = ARTIFACTS.get(name)
        if zoo == "tiny":
            folder = default_tiny_root() / name
            where = str(folder) if folder.is_dir() else "not built (egobench weights tiny)"
        else:
            try:
                r = store.resolve(name)
                where = f"{r.path} ({r.origin})"
            except MissingArtifactError:
                where = "missing"
        click.echo(f"{name:<24} {art.license:<28} {art.source}\n{'':<24} -> {where}")
    for provider, why in sorted(ARTIFACTS.broken.items()):
        click.echo(f"egobench: warning: the artifacts of '{provider}' are not listed: {why}", err=True)


@weights_group.command("check")
@click.argument("names", nargs=-1)
def weights_check_cmd(names):
    """Verify found artifacts against their known checksums."""
    from .errors import MissingArtifactError
    from .weights import ARTIFACTS, WeightStore, check

    store = WeightStore(zoo="real")
    bad = 0
    for name in names or ARTIFACTS.names():
        try:
            r = store.resolve(name)
        except MissingArtifactError as e:
            click.echo(f"{name}: missing ({e})")
            bad += 1
            continue
        problems = check(r)
        bad += bool(problems)
        click.echo(f"{name}: {'ok' if not problems else '; '.join(problems)}")
    sys.exit(1 if bad else 0)


@weights_group.command("tiny")
@click.option("--out", default=None, help="tiny zoo folder (default: $EGOBENCH_TINY_ZOO or ~/.cache/egobench/tiny-zoo)")
@click.argument("names", nargs=-1)
def weights_tiny_cmd(out, names):
    """Build the deterministic random-weight stand-ins (same file formats)."""
    from .weights import ARTIFACTS, build_tiny, default_tiny_root

    root = Path(out) if out else default_tiny_root()
    for name in names or ARTIFACTS.names():
        folder = build_tiny(name, root / name)
        click.echo(f"{name}: {folder}")


@weights_group.command("lock")
@click.option("--protocol", "-p", "protocols", multiple=True, default=("lego-official",), show_default=True,
              help="protocol whose metrics' weights are locked (repeatable)")
@click.option("--methods", "methods", multiple=True, help="method whose weights are locked too (repeatable)")
@click.option("--artifact", "artifacts", multiple=True, metavar="NAME",
              help="any further artifact a run will resolve, e.g. a method option's (-o vllm=NAME) (repeatable)")
@click.option("--zoo", type=click.Choice(["real", "tiny"]), default="real", show_default=True)
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH", help="explicit path for an artifact")
@click.option("--out", required=True, help="the lock file to write (weights.lock)")
def weights_lock_cmd(protocols, methods, artifacts, zoo, weights, out):
    """Record each file's sha256, size and source revision for every artifact a run would resolve."""
    from .io import atomic_write_json
    from .metrics import METRICS
    from .protocol import load_protocol
    from .provenance import make_lock
    from .runner import resolve_method
    from .weights import WeightStore, parse_weight_overrides

    names: list[str] = []
    for p in protocols:
        proto = load_protocol(p)
        for i, spec in enumerate(proto.metrics):
            cls = METRICS.get(spec.metric)
            names += cls.artifacts(cls.parse_settings(spec.settings, f"{proto.source}: metrics[{i}].settings"))
    for m in methods:
        names += list(resolve_method(m).artifacts)
    names += list(artifacts)
    store = WeightStore(zoo=zoo, overrides=parse_weight_overrides(list(weights)))
    for name in dict.fromkeys(names):
        store.resolve(name)  # a missing artifact: one line naming the command that makes it
    lock = make_lock(store.records())
    atomic_write_json(Path(out), lock.to_json())
    click.echo(f"locked {len(lock.artifacts)} artifacts ({sum(len(a['files']) for a in lock.artifacts.values())} "
               f"files) into {out}: weights: locked {lock.short}")


@weights_group.command("download")
@click.argument("names", nargs=-1, required=True)
def weights_download_cmd(names):
    """Fetch artifacts from their public sources (needs the network)."""
    from .weights import download

    for name in names:
        click.echo(f"{name}: {download(name)}")


@main.command("layout")
@click.option("--dataset", "-d", required=True)
@click.option("--data-root", default=None, help="LEGO release folder (default: $EGOBENCH_DATA)")
@click.option("--limit", type=int, default=None, help="only the first N samples")
@click.option("--out", required=True, help="folder to create for an outside method's outputs")
def layout_cmd(dataset, data_root, limit, out):
    """Write the folder skeleton and samples.csv that outside code fills for `egobench evaluate`."""
    from .data import load_split
    from .data.layout import write_layout

    split = load_split(dataset, data_root, limit)
    res = write_layout(split, Path(out))
    click.echo(f"{res.n_samples} samples: folders under {res.out_dir}, list in {res.samples_csv}")
    click.echo(f"fill it, then: egobench evaluate --images {out} --dataset {dataset}")


@main.command("compare")
@click.argument("dir_a")
@click.argument("dir_b")
@click.option("--protocol", "-p", default="egobench-v1", show_default=True,
              help="protocol whose image-pair metrics are used (name or YAML file)")
@click.option("--dataset", "-d", type=click.Choice(["ego4d", "epickitchens"]), default=None,
              help="domain of the images: adds EgoVLP with that domain's checkpoint")
@click.option("--out", default=None, help="write the result (metrics, pairs, unmatched files) as JSON")
@click.option("--batch-size", type=int, default=EVAL_BATCH_SIZE, show_default=True)
@click.option("--zoo", type=click.Choice(["real", "tiny"]), default="real", show_default=True,
              help="real weights, or the tiny random stand-ins (not comparable)")
@click.option("--weights", "weights", multiple=True, metavar="NAME=PATH",
              help="explicit path for a weight artifact (repeatable)")
@click.option("--device", default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="no progress bar")
def compare_cmd(dir_a, dir_b, protocol, dataset, out, batch_size, zoo, weights, device, quiet):
    """Score DIR_B against DIR_A (the reference), images paired by relative path without extension."""
    from .compare_folders import compare

    res = compare(dir_a, dir_b, protocol=protocol, dataset=dataset, zoo=zoo, weights=list(weights), device=device,
                  batch_size=batch_size, out=out, progress=not quiet)
    click.echo(res.table())
    if out:
        click.echo(f"report: {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
