"""Where an editor's pipeline comes from, which class it is, and loading it (dtype, offload).

Checked before a run directory exists: the folder (or cached Hugging Face id)
has a ``model_index.json``, every component it names is present, no config asks
for remote code, the class is a supported editing pipeline, and offloading has
``accelerate``. Nothing is downloaded: a Hugging Face id must already be in the
local cache.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egobench.errors import ConfigError, MissingArtifactError
from egobench.io import read_json
from egobench.weights import TINY_MARKER, refuse_remote_code

from .families import SUPPORTED, Family, family_of

#: components the editors load as None (no safety checker: the benchmark scores every image)
NOT_LOADED = ("safety_checker", "feature_extractor")


@dataclass(frozen=True)
class Source:
    """A checked pipeline: its folder (a cached Hub id's snapshot), where it came from, its class and family."""

    folder: Path
    origin: str  # the folder, or "hf://<id>[@revision]" for a cached Hugging Face id
    class_name: str
    family: Family
    tiny: bool


def _hf_snapshot(repo_id: str, revision: str | None, where: str) -> Path:
    """The cached snapshot folder of Hugging Face ``repo_id`` (refused if it is not in the local cache)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "model_index.json", revision=revision)
    if not isinstance(found, str):
        rev = f" --revision {revision}" if revision else ""
        raise MissingArtifactError(f"{where}: '{repo_id}' is neither a folder nor in the local Hugging Face cache; "
                                   f"egobench downloads nothing at run time: fetch it with "
                                   f"'hf download {repo_id}{rev}' (or pass a diffusers folder)")
    return Path(found).parent


def check_class(class_name: str, where: str) -> Family:
    """The family of ``class_name``; anything else is refused with the supported classes."""
    fam = family_of(class_name)
    if fam is None:
        raise ConfigError(f"{where}: '{class_name}' is not a supported diffusers editing pipeline; supported: "
                          + ", ".join(SUPPORTED))
    return fam


def check_folder(folder: Path, where: str) -> dict[str, Any]:
    """The folder's model_index.json, after checking each component it names has its subfolder."""
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ConfigError(f"{where}: {folder} is not a diffusers pipeline folder (no model_index.json)")
    index = read_json(index_path)
    if not isinstance(index, dict):
        raise ConfigError(f"{where}: {index_path} is not a JSON object")
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[0] is None:
            continue
        if name in NOT_LOADED:
            continue
        if not (folder / name).is_dir():
            raise ConfigError(f"{where}: component '{name}' ({spec[1]}) named in {index_path} is missing "
                              f"(no folder {folder / name})")
    refuse_remote_code(folder, where)
    return index


def locate(pipeline: str, revision: str | None, class_name: str | None, where: str) -> Source:
    """Check a ``pipeline=`` value (folder or cached Hugging Face id) and the class it loads as."""
    if class_name is not None:
        check_class(class_name, where)  # a bad -o class= fails before looking at any file
    path = Path(pipeline).expanduser()
    if path.is_dir():
        folder, origin = path, str(path)
    elif path.exists() or pipeline.count("/") != 1 or pipeline.startswith((".", "/", "~")):
        raise ConfigError(f"{where}: pipeline={pipeline} is not a folder (nor a Hugging Face id 'owner/name')")
    else:
        folder = _hf_snapshot(pipeline, revision, where)
        origin = f"hf://{pipeline}" + (f"@{revision}" if revision else "")
    index = check_folder(folder, where)
    name = class_name or index.get("_class_name")
    if not isinstance(name, str):
        raise ConfigError(f"{where}: {folder / 'model_index.json'} names no pipeline class; pass -o class=NAME")
    return Source(folder=folder, origin=origin, class_name=name, family=check_class(name, where), tiny=(folder / TINY_MARKER).is_file())


def check_offload(offload: str, where: str) -> None:
    """Offloading is accelerate's: refuse it up front when accelerate is not installed."""
    if offload != "none" and importlib.util.find_spec("accelerate") is None:
        raise ConfigError(f"{where}: offload={offload} needs the 'accelerate' package (pip install accelerate); "
                          "or use offload=none")


def load_pipeline(source: Source, dtype: Any, device: str, offload: str, quiet: bool) -> Any:
    """The pipeline of ``source`` on ``device`` (or offloaded to it), progress bars off."""
    from diffusion_core.feedback import library_output
    from egobench._compat import ensure_torchvision

    ensure_torchvision()
    import diffusers

    cls = getattr(diffusers, source.class_name)
    extra: dict[str, Any] = {}
    if "safety_checker" in cls._get_signature_keys(cls)[0]:
        extra = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    with library_output(quiet=quiet):
        pipe = cls.from_pretrained(str(source.folder), dtype=dtype, local_files_only=True, **extra)
    pipe.set_progress_bar_config(disable=True)
    if offload == "none":
        return pipe.to(device)
    if str(device).startswith("cpu"):
        raise ConfigError(f"offload={offload} moves models to an accelerator as they are needed; the device is "
                          f"{device}: use offload=none")
    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.enable_sequential_cpu_offload(device=device)
    return pipe
