"""The weights registry: named artifacts, where they come from, where they are.

Resolution order for the real zoo: an explicit path (``--weights NAME=PATH``)
-> ``$EGOBENCH_WEIGHTS/<name>/<file>`` -> the Hugging Face cache (for ``hf``
sources) or the torch hub cache (for URL sources). Nothing is downloaded at run
time; ``egobench weights download NAME`` is the only command that touches the
network. A missing artifact is a one-line error naming it, its source and the
command that fetches it.

The *tiny zoo* is a deterministic random-weight stand-in for every artifact, in
the same on-disk format, built locally and loaded by the same loaders. Results
made with it are stamped as not comparable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from .errors import ConfigError, MissingArtifactError, UserError
from .io import atomic_write_json
from .registry import Registry

TINY_MARKER = "EGOBENCH_TINY_ZOO.json"


@dataclass(frozen=True)
class Artifact:
    """A named weight artifact and its public source."""

    name: str
    description: str
    files: tuple[str, ...]
    license: str
    url: str | None = None  # direct download (torch hub cache layout)
    hf_repo: str | None = None  # Hugging Face repo id (files are paths inside it)
    hf_repo_type: str = "model"
    sha256: dict[str, str] = field(default_factory=dict)  # full digests where known
    sha256_prefix: dict[str, str] = field(default_factory=dict)  # torchvision-style name prefixes
    tiny: str | None = None  # "module:function(out_dir)" building the tiny stand-in
    #: "module:function(out_dir)" building a real-size random-weight stand-in (``egobench bench --profile
    #: full-arch``); None: the tiny stand-in already has the real architecture or is only a vocabulary
    full_arch: str | None = None
    #: for artifacts with no download source: the one command that makes the folder
    #: (e.g. "egobench convert lego --ckpt X.ckpt --out $EGOBENCH_WEIGHTS/NAME")
    make: str | None = None
    #: what ``make`` starts from, shown as the source (e.g. "hf://repo/file.ckpt")
    made_from: str | None = None
    #: the Hugging Face commit the pins refer to, where known (never guessed: empty when unverified)
    revision: str | None = None

    @property
    def downloadable(self) -> bool:
        return bool(self.hf_repo or self.url)

    @property
    def command(self) -> str | None:
        """The one command that makes this artifact available (None: none recorded)."""
        if self.downloadable:
            return f"egobench weights download {self.name}"
        return self.make

    @property
    def how_to_get(self) -> str:
        """How a user gets this artifact, naming :attr:`command`."""
        where = f"$EGOBENCH_WEIGHTS/{self.name}/"
        if self.downloadable:
            origin = f"hf://{self.hf_repo}" if self.hf_repo else self.url
            return f"source: {origin}; fetch it with '{self.command}' (or place its files in {where})"
        if self.make:
            start = f" from {self.made_from}" if self.made_from else ""
            return f"no download source: make it with '{self.make}'{start}"
        return f"no download source and no command to make it is recorded; place its files in {where}"

    @property
    def source(self) -> str:
        if self.hf_repo:
            return f"hf://{self.hf_repo}/{','.join(self.files)}"
        if self.url:
            return self.url
        if self.make:
            return f"made locally: '{self.make}'" + (f" from {self.made_from}" if self.made_from else "")
        return "unknown"


#: egobench's own modules that declare artifacts (its metrics); imported on the first lookup or
#: listing so the registry knows every artifact without importing metric code up front. Model
#: packages declare theirs through the ``egobench.artifacts`` entry-point group (see
#: :class:`ArtifactRegistry`); egobench names none of them.
CORE_PROVIDERS = (
    "egobench.metrics.egovlp",
    "egobench.metrics.clip_metric",
    "egobench.metrics.fid",
    "egobench.metrics.blip_protocol",
    "egobench.metrics.vlm_judge",
)


class ArtifactRegistry(Registry[Artifact]):
    """The artifact table. An ``egobench.artifacts`` entry point names a *provider*: a module that
    registers its artifacts with :func:`register_artifact` when imported
    (``lego-vllm = "lego.vllm"``), or an :class:`Artifact` / a sequence of them
    (``my-net = "my_pkg.weights:ARTIFACTS"``). Providers are imported on the first lookup or
    listing. A provider that cannot be imported (its package is missing, blocked or broken) is
    recorded in :attr:`broken` and named by the "unknown artifact" error; the other providers'
    artifacts stay usable. A name registered twice is refused.
    """

    def _add_entry_point(self, ep: metadata.EntryPoint) -> None:
        try:
            obj = ep.load()
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001 - one provider must not take the others' artifacts down
            first = str(e).splitlines()[0] if str(e) else ""
            self.broken[ep.name] = f"{ep.value}: {type(e).__name__}: {first}"
            return
        if isinstance(obj, ModuleType):
            return  # the module registered its artifacts while it was imported
        for art in [obj] if isinstance(obj, Artifact) else list(obj):
            if not isinstance(art, Artifact):
                raise ConfigError(f"artifact entry point {ep.name} = {ep.value}: {type(art).__name__} is not an "
                                  "egobench Artifact")
            if self._items.get(art.name) is not art:
                self.add(art.name, art, origin=f"entry point {ep.value}")


ARTIFACTS: ArtifactRegistry = ArtifactRegistry("artifact", entry_point_group="egobench.artifacts",
                                               core=CORE_PROVIDERS)


def register_artifact(artifact: Artifact) -> Artifact:
    ARTIFACTS.add(artifact.name, artifact, origin="weights")
    return artifact


def default_tiny_root() -> Path:
    env = os.environ.get("EGOBENCH_TINY_ZOO")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "egobench" / "tiny-zoo"


def _torch_hub_checkpoints() -> Path:
    base = os.environ.get("TORCH_HOME") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"
    )
    return Path(base) / "hub" / "checkpoints"


@dataclass
class Resolved:
    name: str
    path: Path  # folder holding the artifact's files
    origin: str  # override | EGOBENCH_WEIGHTS | hf-cache | torch-hub | tiny-zoo
    tiny: bool

    def file(self, rel: str) -> Path:
        return self.path / rel

    def record(self, with_hashes: bool = True, lock: Any = None) -> dict[str, Any]:
        """What a manifest stores: path, origin and, with hashes, each file's sha256 and size, the
        source revision when known and ``verified`` / ``unverified`` (:mod:`egobench.provenance`)."""
        if not with_hashes:
            return {"path": str(self.path), "origin": self.origin, "tiny": self.tiny}
        from .provenance import artifact_record

        return artifact_record(self, ARTIFACTS.get(self.name), lock)


class WeightStore:
    """Finds artifacts for one run and remembers which ones were used."""

    def __init__(
        self,
        zoo: Literal["real", "tiny"] = "real",
        overrides: dict[str, str | os.PathLike] | None = None,
        weights_dir: str | os.PathLike | None = None,
        tiny_root: str | os.PathLike | None = None,
        lock: Any = None,
    ):
        if zoo not in ("real", "tiny"):
            raise UserError(f"unknown zoo '{zoo}'; use 'real' or 'tiny'")
        self.zoo = zoo
        self.overrides = {k: Path(v).expanduser() for k, v in (overrides or {}).items()}
        for name in self.overrides:
            ARTIFACTS.get(name)  # unknown names fail early with "did you mean"
        wd = weights_dir or os.environ.get("EGOBENCH_WEIGHTS")
        self.weights_dir = Path(wd).expanduser() if wd else None
        self.tiny_root = Path(tiny_root) if tiny_root else default_tiny_root()
        self.used: dict[str, Resolved] = {}
        #: a :class:`~egobench.provenance.WeightsLock`: every resolved artifact must match it
        self.lock = lock

    @property
    def any_tiny(self) -> bool:
        return any(r.tiny for r in self.used.values())

    def resolve(self, name: str) -> Resolved:
        if name in self.used:
            return self.used[name]
        art = ARTIFACTS.get(name)
        res = self._find(art)
        if self.lock is not None:
            self.lock.check(name, res.record(lock=self.lock))  # one line naming artifact, file and digests
        self.used[name] = res
        return res

    def records(self) -> dict[str, dict[str, Any]]:
        """Every used artifact's manifest record (digests, revision, verified)."""
        return {name: r.record(lock=self.lock) for name, r in sorted(self.used.items())}

    def _find(self, art: Artifact) -> Resolved:
        if art.name in self.overrides:
            p = self.overrides[art.name]
            folder = p if p.is_dir() else p.parent
            missing = [f for f in art.files if not (folder / f).is_file()]
            if missing:
                raise MissingArtifactError(
                    f"weights '{art.name}': {folder / missing[0]} not found (given with --weights)"
                )
            refuse_remote_code(folder, f"weights '{art.name}' (given with --weights)")
            return Resolved(art.name, folder, "override", (folder / TINY_MARKER).is_file())
        if self.zoo == "tiny":
            folder = self.tiny_root / art.name
            if not all((folder / f).is_file() for f in art.files) or not (folder / TINY_MARKER).is_file():
                build_tiny(art.name, folder)
            return Resolved(art.name, folder, "tiny-zoo", True)
        candidates: list[tuple[Path, str]] = []
        if self.weights_dir:
            candidates.append((self.weights_dir / art.name, "EGOBENCH_WEIGHTS"))
        if art.hf_repo:
            folder = _hf_cached_folder(art)
            if folder is not None:
                candidates.append((folder, "hf-cache"))
        if art.url:
            candidates.append((_torch_hub_checkpoints(), "torch-hub"))
        for folder, origin in candidates:
            if all((folder / f).is_file() for f in art.files):
                refuse_remote_code(folder, f"weights '{art.name}' ({origin})")
                res = Resolved(art.name, folder, origin, (folder / TINY_MARKER).is_file())
                problems = check(res)
                if problems:
                    raise ChecksumError(f"weights '{art.name}': {problems[0]}; re-fetch with "
                                        f"'egobench weights download {art.name}'")
                return res
        raise MissingArtifactError(f"weights '{art.name}' not found locally; {art.how_to_get}")


#: keys of a model config that make transformers / diffusers import code shipped with the weights
REMOTE_CODE_KEYS = ("auto_map", "trust_remote_code")


def _config_files(folder: Path) -> list[Path]:
    """The JSON configs transformers and diffusers read: the folder's and its components' (one level)."""
    def wanted(p: Path) -> bool:
        return p.name == "model_index.json" or p.name.endswith("config.json")

    found = [p for p in folder.glob("*.json") if wanted(p)]
    found += [p for p in folder.glob("*/*.json") if wanted(p)]
    return sorted(p for p in found if p.is_file())


def refuse_remote_code(folder: str | os.PathLike, what: str) -> None:
    """Refuse a weights folder whose configs ask for code shipped with it (``auto_map`` /
    ``trust_remote_code``): one line naming the file and the key. egobench never loads such code."""
    from .io import read_json

    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in _config_files(folder):
        data = read_json(path)
        if not isinstance(data, dict):
            continue
        keys = [k for k in REMOTE_CODE_KEYS if k in data]
        if keys:
            raise UserError(
                f"{what}: {path} asks for remote code ('{keys[0]}'); egobench never runs code shipped "
                "with weights: use a folder of a standard transformers/diffusers class"
            )


def _hf_cached_folder(art: Artifact) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return None
    first = try_to_load_from_cache(art.hf_repo, art.files[0], repo_type=art.hf_repo_type)
    if isinstance(first, str):
        # snapshot folder = the cached file's path minus its relative name
        return Path(first[: -len(art.files[0])])
    return None


def build_tiny(name: str, folder: str | os.PathLike | None = None, full_arch: bool = False) -> Path:
    """Build the tiny stand-in of artifact ``name`` (deterministic) and return its folder; with
    ``full_arch``, the real-size random-weight one (:attr:`Artifact.full_arch`, else the tiny one)."""
    from .registry import _import_ref

    art = ARTIFACTS.get(name)
    ref = (art.full_arch or art.tiny) if full_arch else art.tiny
    if not ref:
        raise UserError(f"artifact '{name}' has no tiny stand-in")
    folder = Path(folder) if folder else default_tiny_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    builder: Callable[[Path], None] = _import_ref(ref)
    builder(folder)
    size = "at real size " if full_arch else ""
    atomic_write_json(
        folder / TINY_MARKER,
        {"artifact": name, "note": f"random weights {size}built by egobench; results are NOT comparable"},
    )
    return folder


def build_full_arch_zoo(names: Sequence[str], folder: str | os.PathLike,
                        tick: Callable[[int], None] = lambda n: None) -> Path:
    """Real-size random-weight stand-ins of ``names`` under ``folder/<name>/``, in the real files'
    formats and marked as stand-ins; an artifact already built there is kept. Load them with
    ``WeightStore(zoo="real", weights_dir=folder)``: the real loaders read them."""
    for name in names:
        target = Path(folder) / name
        if not (target / TINY_MARKER).is_file():
            build_tiny(name, target, full_arch=True)
        tick(1)
    return Path(folder)


class ChecksumError(MissingArtifactError):
    """A weight file does not match its published digest."""


def check(res: Resolved) -> list[str]:
    """Verify a resolved artifact's files against known digests; return problems."""
    from .data.split import file_digest

    art = ARTIFACTS.get(res.name)
    problems = []
    for f in art.files:
        p = res.path / f
        if not p.is_file():
            problems.append(f"{p}: missing")
            continue
        if res.tiny or (f not in art.sha256 and f not in art.sha256_prefix):
            continue
        digest = file_digest(p)
        if f in art.sha256 and digest != art.sha256[f]:
            problems.append(f"{p}: sha256 {digest[:16]}... does not match {art.sha256[f][:16]}...")
        if f in art.sha256_prefix and not digest.startswith(art.sha256_prefix[f]):
            problems.append(f"{p}: sha256 does not start with {art.sha256_prefix[f]}")
    return problems


def _verify_fetched(art: Artifact, folder: Path) -> None:
    """What was fetched matches the registry's pins (files without a pin are not checked: the registry
    leaves a digest empty where it could not be verified offline)."""
    from .provenance import verify_download

    bad = verify_download(art, folder)
    if bad:
        raise ChecksumError(bad[0] + "; the download does not match the registry's pin (delete it and retry, or "
                            "report it)")


def download(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """Fetch an artifact from its public source (the only networked call)."""
    art = ARTIFACTS.get(name)
    wd = weights_dir or os.environ.get("EGOBENCH_WEIGHTS")
    if art.hf_repo:
        from huggingface_hub import hf_hub_download

        path = None
        for f in art.files:
            path = hf_hub_download(art.hf_repo, f, repo_type=art.hf_repo_type, revision=art.revision)
        assert path is not None
        _verify_fetched(art, Path(path).parent)
        return Path(path).parent
    if art.url:
        import torch.hub

        target = (Path(wd) / name) if wd else _torch_hub_checkpoints()
        target.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(art.url, str(target / art.files[0]), progress=True)
        return target
    raise UserError(f"artifact '{name}': {art.how_to_get}")


# ---------------------------------------------------------------------------
# Artifacts of this module's metrics. Later metric families register their own.
# ---------------------------------------------------------------------------
for _net, _file, _prefix in (
    ("squeeze", "squeezenet1_1-b8a52dc0.pth", "b8a52dc0"),
    ("alex", "alexnet-owt-7be5be79.pth", "7be5be79"),
    ("vgg", "vgg16-397923af.pth", "397923af"),
):
    register_artifact(
        Artifact(
            name=f"lpips-{_net}-backbone",
            description=f"torchvision ImageNet weights of the LPIPS '{_net}' backbone "
            "(the v0.1 linear heads ship inside the lpips package)",
            files=(_file,),
            license="BSD-3-Clause (torchvision)",
            url=f"https://download.pytorch.org/models/{_file}",
            sha256_prefix={_file: _prefix},
            tiny=f"egobench.metrics.lpips_metric:build_tiny_backbone_{_net}",
        )
    )


def parse_weight_overrides(weights: dict[str, str] | Sequence[str] | None) -> dict[str, str]:
    """``--weights NAME=PATH`` items (or a ready dict) as ``{name: path}``."""
    if not weights:
        return {}
    if isinstance(weights, dict):
        return dict(weights)
    out = {}
    for item in weights:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--weights expects NAME=PATH, got {item!r}")
        out[name] = path
    return out
