"""Which visual LLM enhances LEGO's prompt: the released LLaVA (per variant) or any transformers VLM.

``-o vllm=VALUE`` (``lego``) / ``--vllm VALUE`` (``egobench vllm-features``) takes

* a registered artifact of a transformers VLM (``lego-vllm-qwen2-vl-2b``; the tiny zoo builds its
  random-weight stand-in),
* a Hugging Face id (``Qwen/Qwen2-VL-2B-Instruct``): the artifact whose ``hf_repo`` it is, else
  the snapshot already in the Hugging Face cache (nothing is downloaded here),
* a local folder written by ``save_pretrained`` (an image-text-to-text model and its processor).

Without it, LEGO's own LLaVA-Llama-2-13B is used (finetuned per dataset, or off the shelf).
Self-computed features go under the tag ``egobench-<key>`` (:func:`self_tag`), never under a
released dump's tag, so a feature folder always says which source a file came from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from egobench.errors import ConfigError, MissingArtifactError
from egobench.io import safe_component

from .vllm_artifacts import ALT_VLLM_ARTIFACTS, LLAVA_ARTIFACTS, VARIANT_ARTIFACTS, VISION_ARTIFACT

_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass(frozen=True)
class VLMChoice:
    """A prompt enhancer, before its weights are resolved."""

    kind: Literal["llava", "transformers"]
    #: what the user named (artifact, HF id or folder); for LLaVA the artifact of the variant
    id: str
    #: the part of the feature tag naming this VLM (a safe path component)
    key: str
    artifact: str | None = None
    variant: str | None = None  # LLaVA only: ego4d | epic | off-the-shelf


@dataclass
class ResolvedVLM:
    """A prompt enhancer with its weights found: folder(s), digests, origin."""

    choice: VLMChoice
    folder: Path
    tiny: bool
    #: file (prefixed with its artifact for LLaVA) -> sha256
    files: dict[str, str]
    #: per-artifact manifest records (egobench.provenance.artifact_record), or the folder's own
    records: dict[str, Any]
    hf_repo: str | None = None
    revision: str | None = None
    note: str = ""

    @property
    def weights_sha256(self) -> str:
        """One digest of every file the VLM is loaded from (names and contents)."""
        blob = json.dumps(dict(sorted(self.files.items())), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


def llava_choice(variant: str) -> VLMChoice:
    """LEGO's LLaVA for ``variant`` (ego4d | epic | off-the-shelf)."""
    name = VARIANT_ARTIFACTS[variant]
    return VLMChoice("llava", name, name, artifact=name, variant=variant)


def parse_vllm(value: str, prefix: str = "", option: str = "vllm") -> VLMChoice:
    """``-o vllm=VALUE`` -> a transformers VLM choice (one-line ConfigError for anything else);
    ``prefix`` starts the message (e.g. "method 'lego': "), ``option`` names the option."""
    from egobench.weights import ARTIFACTS

    value = str(value).strip()
    given = f"{prefix}{option}={value}"
    if not value:
        raise ConfigError(f"{given}: empty; name a transformers VLM (artifact, Hugging Face id or folder)")
    if value in LLAVA_ARTIFACTS or value == VISION_ARTIFACT:
        raise ConfigError(f"{given}: that is LEGO's own LLaVA, the default; leave {option} unset "
                          "(and use vllm_finetuned=false for the off-the-shelf one)")
    if value in ARTIFACTS:
        return VLMChoice("transformers", value, value, artifact=value)
    for repo, name in ALT_VLLM_ARTIFACTS.items():
        if value == repo:  # the same VLM under one id (the artifact's), so provenance does not depend on the spelling
            return VLMChoice("transformers", name, name, artifact=name)
    folder = Path(value).expanduser()
    if folder.is_dir():
        return VLMChoice("transformers", str(folder), safe_component(f"path-{folder.resolve().name}", option))
    if _HF_ID.match(value) and ".." not in value:
        return VLMChoice("transformers", value, safe_component("hf-" + value.replace("/", "--"), option))
    raise ConfigError(f"{given}: not a registered artifact, a folder or a Hugging Face id (owner/name); "
                      f"e.g. {option}={next(iter(ALT_VLLM_ARTIFACTS.values()))}")


def self_tag(choice: VLMChoice) -> str:
    """The feature tag of features egobench computed with ``choice`` (never a released dump's tag)."""
    return f"egobench-{choice.key}"


def _folder_files(folder: Path) -> dict[str, str]:
    from egobench.provenance import file_record

    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[rel.as_posix()] = file_record(p)["sha256"]
    return out


def resolve_vlm(choice: VLMChoice, store: Any) -> ResolvedVLM:
    """Find the weights of ``choice`` (through ``store`` for artifacts, so the run's manifest lists them)."""
    from egobench.provenance import snapshot_revision
    from egobench.weights import ARTIFACTS, refuse_remote_code

    if choice.artifact is not None:
        names = [choice.artifact] + ([VISION_ARTIFACT] if choice.kind == "llava" else [])
        resolved = [store.resolve(n) for n in names]
        records = {r.name: r.record() for r in resolved}
        files = {f"{n}/{f}": sha for n, rec in records.items() for f, sha in rec["sha256"].items()}
        art = ARTIFACTS.get(choice.artifact)
        note = "" if getattr(art, "sha256", None) else (
            f"artifact '{art.name}' carries no pinned digests: the real weights' sha256 could not be "
            "verified offline; the digest here is of the files found")
        return ResolvedVLM(choice, resolved[0].path, any(r.tiny for r in resolved), files, records,
                           hf_repo=art.hf_repo, revision=records[art.name].get("revision"), note=note)
    folder = Path(choice.id).expanduser()
    hf_repo = None
    if not folder.is_dir():
        hf_repo = choice.id
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(choice.id, local_files_only=True))
        except Exception:  # noqa: BLE001 - any hub error means "not in the local cache"
            raise MissingArtifactError(
                f"vllm={choice.id}: not in the local Hugging Face cache (egobench downloads nothing here); "
                f"fetch it with 'hf download {choice.id}' or pass a local folder") from None
    if not (folder / "config.json").is_file():
        raise ConfigError(f"vllm={choice.id}: {folder / 'config.json'} not found; pass a folder written by "
                          "save_pretrained (model and processor)")
    refuse_remote_code(folder, f"vllm={choice.id}")
    from egobench.weights import TINY_MARKER

    files = _folder_files(folder)
    record = {"path": str(folder), "origin": "hf-cache" if hf_repo else "folder", "sha256": files,
              "verified": "unverified"}
    return ResolvedVLM(choice, folder, (folder / TINY_MARKER).is_file(), files, {choice.key: record},
                       hf_repo=hf_repo, revision=snapshot_revision(folder),
                       note="no pinned digests for a folder or an unregistered Hugging Face id: unverified")
