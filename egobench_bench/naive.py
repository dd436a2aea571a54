"""The naive pipeline of item 1: the released metric script's structure, on the reference libraries.

Batch size 1, metric by metric, every image decoded again with PIL for every metric, no cache; each
metric is its reference library called on its own (``skimage`` PSNR, ``lpips.LPIPS``, ``open_clip``,
torch-fidelity's Inception and FID / KID, pytorch-fid for the released input stage, transformers'
``BlipForConditionalGeneration``), loaded from the weight files the evaluator resolves. EgoVLP has no
reference library: its model and clip preprocessing are the project's (egobench.metrics.egovlp*), as
is the reader of BLIP's original ``.pth``. The project's metric classes are never called; their parsed
settings and artifact names are read. BLIP's released mode (dropout while captioning, the 4.19.2 beam
search) has no library form: the naive side captions in eval mode with transformers' ``generate``, so
under ``lego-official`` its captions differ (the work per image is the same).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from egobench.errors import UserError

PROMPT, BLIP_GENERATE = "a picture of", dict(num_beams=3, max_length=20, min_length=5)  # the released generate()
BLIP_MEAN, BLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@dataclass
class NaiveResult:
    """Per column: per-sample values and captions; per set metric (FID, KID) its value, computed by
    :meth:`finish` untimed (torch-fidelity's eigenvalues of a 2048 x 2048 product cost tens of seconds on a
    CPU whatever N and would drown the ratio: the naive time holds the feature extraction only)."""

    values: dict[str, list[float]] = field(default_factory=dict)
    captions: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[str, float | None] = field(default_factory=dict)
    pending: dict[str, Callable[[], float | None]] = field(default_factory=dict)

    def finish(self) -> NaiveResult:
        self.sets.update({name: fn() for name, fn in self.pending.items()})
        self.pending.clear()
        return self


def decode(path: Path) -> np.ndarray:
    """What the released script does for every image it needs: open it with PIL, to RGB."""
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def unit(img: np.ndarray, device: str) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1] (torchvision's ``to_tensor``)."""
    import torchvision.transforms.functional as tf

    return tf.to_tensor(img)[None].to(device)


def _file(store: Any, artifact: str) -> Path:
    from egobench.weights import ARTIFACTS

    return store.resolve(artifact).file(ARTIFACTS.get(artifact).files[0])


def _needs(package: str, what: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise UserError(f"egobench bench: the naive {what} is {package}'s; pip install {package.replace('_', '-')}")


def _clip_model(store: Any, device: str) -> Any:
    import open_clip

    res = store.resolve("clip-vit-l-14")
    if (res.path / "open_clip_config.json").is_file():  # the tiny zoo's architecture, open_clip's local-dir layout
        return open_clip.create_model(f"local-dir:{res.path}", device=device).eval()
    return open_clip.create_model("ViT-L-14", pretrained=str(_file(store, "clip-vit-l-14")), force_quick_gelu=True,
                                  device=device).eval()


def _egovlp_models(store: Any, device: str, frames: dict[str, int | None]) -> Callable[[Any], Any]:
    """(family, EgoVLP model) of a sample's domain (loaded on first use: by the warm-up)."""
    from egobench.metrics.egovlp import ARTIFACT_OF, model_family
    from egobench.metrics.egovlp_model import load_egovlp

    models: dict[str, Any] = {}

    def get(smp: Any) -> Any:
        fam = model_family(str(smp.meta.get("domain", smp.dataset)))
        if fam not in models:
            models[fam] = load_egovlp(_file(store, ARTIFACT_OF[fam]), num_frames=frames[fam], device=device).eval()
        return fam, models[fam]

    return get


def _psnr(s: Any, store: Any, device: str) -> Callable:
    _needs("skimage", "PSNR")
    from skimage.metrics import peak_signal_noise_ratio

    # the synthetic outputs have their target's size: no resize on either side
    return lambda smp, gen: peak_signal_noise_ratio(decode(smp.target_path) / 255.0, decode(gen) / 255.0,
                                                    data_range=s.data_range)


def _lpips(s: Any, store: Any, device: str) -> Callable:
    import lpips

    model = lpips.LPIPS(net=s.net, version="0.1", pnet_rand=True, verbose=False).eval().to(device)
    backbone = torch.load(_file(store, f"lpips-{s.net}-backbone"), map_location=device, weights_only=True)
    model.net.load_state_dict({k: backbone[f"features.{k.split('.', 1)[1]}"] for k in model.net.state_dict()})
    signed = s.input_range == "signed"  # lpips' normalize=True maps [0, 1] to the [-1, 1] it expects
    return lambda smp, gen: model(unit(decode(smp.target_path), device), unit(decode(gen), device),
                                  normalize=signed).item()


def _clip(s: Any, store: Any, device: str) -> Callable:
    import open_clip.constants as oc
    import torchvision.transforms.functional as tf

    if s.resize != "squash":
        raise UserError(f"egobench bench: the naive CLIP squashes to 224 (the released code), not '{s.resize}'")
    model = _clip_model(store, device)

    def embed(path: Path) -> torch.Tensor:
        x = F.interpolate(unit(decode(path), device), size=(224, 224), mode="bicubic", antialias=s.antialias)
        return model.encode_image(tf.normalize(x, oc.OPENAI_DATASET_MEAN, oc.OPENAI_DATASET_STD), normalize=True)

    return lambda smp, gen: F.cosine_similarity(embed(gen), embed(smp.target_path)).item()


def _egovlp(s: Any, store: Any, device: str, uses_input: bool) -> Callable:
    from egobench.metrics.egovlp import make_clip, preprocess_frame, resize_exact

    frames = {"ego4d": s.frames_ego4d, "epic": s.frames_epic}
    model_of = _egovlp_models(store, device, frames)

    def score(smp: Any, gen_path: Path) -> float:
        fam, model = model_of(smp)
        tgt, gen, ctx = unit(decode(smp.target_path), "cpu")[0], unit(decode(gen_path), "cpu")[0], None
        if uses_input:
            inp = unit(decode(smp.input_path), "cpu")[0]
            gen = resize_exact(gen, tuple(inp.shape[-2:]), s.antialias) if s.resize_generated_to_input else gen
            ctx = preprocess_frame(inp, s.antialias)
        t, g = (model.embed_video(make_clip(preprocess_frame(x, s.antialias), frames[fam], ctx)[None].to(device)) for x in (tgt, gen))
        return F.cosine_similarity(t, g).item()

    return score


def _blip(s: Any, store: Any, device: str) -> Callable:
    from transformers import BertTokenizer, BlipForConditionalGeneration, BlipImageProcessorPil

    from egobench.metrics.blip_protocol import hf_artifact, original_artifact

    res = store.resolve((hf_artifact if s.weights_format == "hf" else original_artifact)(s.model))
    processor = BlipImageProcessorPil(size={"height": 384, "width": 384}, resample=3, image_mean=list(BLIP_MEAN),
                                      image_std=list(BLIP_STD))
    if s.weights_format != "hf":  # no library reads the original .pth: the project's converter loads it
        from egobench.metrics.blip_captioner import load_blip_captioner

        model, tok = load_blip_captioner(res, "original", device, tokenizer_res=store.resolve("blip-bert-tokenizer"))
    else:
        model = BlipForConditionalGeneration.from_pretrained(str(res.path), local_files_only=True).eval().to(device)
        tok = BertTokenizer.from_pretrained(str(res.path), local_files_only=True)
        processor = BlipImageProcessorPil.from_pretrained(str(res.path), local_files_only=True)
    embed_text = _text_tower(s, store, device)

    def score(smp: Any, gen: Path) -> tuple[float, str]:
        pixels = processor(decode(gen), return_tensors="pt").pixel_values.to(device)
        ids = model.generate(pixel_values=pixels, input_ids=tok([PROMPT], return_tensors="pt").input_ids.to(device),
                             **BLIP_GENERATE)[0]
        caption = tok.decode(ids, skip_special_tokens=True)[len(PROMPT):].strip()
        ref = smp.description if s.reference == "description" else smp.action
        return F.cosine_similarity(embed_text(caption, smp), embed_text(ref, smp)).item(), caption

    return score


def _text_tower(s: Any, store: Any, device: str) -> Callable[[str, Any], torch.Tensor]:
    """BLIP's caption / reference text embedding: open_clip's text tower, or EgoVLP's (no library)."""
    if s.text_encoder == "clip":
        import open_clip

        model = _clip_model(store, device)
        return lambda text, smp: model.encode_text(open_clip.tokenize([text]).to(device), normalize=True)
    from transformers import DistilBertTokenizer

    tok = DistilBertTokenizer.from_pretrained(str(store.resolve("egovlp-distilbert").path), local_files_only=True)
    model_of = _egovlp_models(store, device, {"ego4d": None, "epic": None})

    def embed(text: str, smp: Any) -> torch.Tensor:
        t = tok([text], truncation=True, max_length=512, return_tensors="pt")
        return model_of(smp)[1].embed_text(t["input_ids"].to(device), t["attention_mask"].to(device))

    return embed


def _inception(s: Any, store: Any, device: str, kid: bool) -> tuple[Callable, Callable]:
    """(features of one image, the set value from target and generated features): torch-fidelity's, with
    pytorch-fid's network and input stage for the released protocol."""
    from torch_fidelity import metric_fid, metric_kid

    file = _file(store, "inception-fid")
    if s.resize == "pytorch-fid":
        extract = _pytorch_fid_extractor(file, device)
    elif s.resize == "torch-fidelity":
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(file))
        model = model.to(device).eval()
        extract = lambda img: model(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].to(device))[0]  # noqa: E731
    else:
        raise UserError(f"egobench bench: no naive Inception input stage '{s.resize}'")

    def value(t: torch.Tensor, g: torch.Tensor) -> float:
        if kid:
            return float(metric_kid.kid_features_to_metric(
                g, t, kid_subsets=s.subsets, kid_subset_size=min(s.subset_size, len(g)), kid_kernel="poly",
                kid_kernel_poly_degree=s.degree, kid_kernel_poly_gamma=s.gamma, kid_kernel_poly_coef0=s.coef0,
                rng_seed=s.seed, verbose=False)[metric_kid.KEY_METRIC_KID_MEAN])
        stats = (metric_fid.fid_features_to_statistics(x) for x in (t, g))
        return float(metric_fid.fid_statistics_to_metric(*stats, verbose=False)[metric_fid.KEY_METRIC_FID])

    return extract, value


def _pytorch_fid_extractor(file: Path, device: str) -> Callable:
    """pytorch-fid's InceptionV3 (its own resize and scaling), its weights read from ``file`` through torch
    hub's checkpoint folder (where pytorch-fid looks first); the file is the same 2015-12-05 conversion."""
    import tempfile

    _needs("pytorch_fid", "FID of the released input stage")
    from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

    hub = torch.hub.get_dir()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "checkpoints").mkdir()
        (Path(tmp) / "checkpoints" / FID_WEIGHTS_URL.rsplit("/", 1)[1]).symlink_to(Path(file).resolve())
        torch.hub.set_dir(tmp)
        try:
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()
        finally:
            torch.hub.set_dir(hub)
    return lambda img: model(unit(img, device))[0].flatten(1)


def load(columns: list, store: Any, device: str) -> dict[str, Any]:
    """Per column its scorer from the reference libraries: ``score(sample, generated) -> value | (value,
    caption)``, or for a set metric ``(features(image), value(target features, generated features))``."""
    from diffusion_core.feedback import library_output

    builders = {"psnr": _psnr, "lpips": _lpips, "clip": _clip, "blip": _blip,
                "egovlp": lambda s, st, d: _egovlp(s, st, d, False), "egovlp-plus": lambda s, st, d: _egovlp(s, st, d, True),
                "fid": lambda s, st, d: _inception(s, st, d, False), "kid": lambda s, st, d: _inception(s, st, d, True)}
    with library_output(quiet=True):  # no loading bars or deprecation chatter (as the evaluator's loaders)
        unknown = [c.spec.metric for c in columns if c.spec.metric not in builders]
        if unknown:
            raise UserError(f"egobench bench: the naive pipeline has no reference library for metric '{unknown[0]}'")
        return {c.name: builders[c.spec.metric](c.metric.settings, store, device) for c in columns}


@torch.no_grad()
def run(scorers: dict[str, Any], samples: Sequence[Any], locate: Callable,
        tick: Callable[[int], None] = lambda n: None) -> NaiveResult:
    """Score ``samples`` metric by metric, one image at a time (set values: :meth:`NaiveResult.finish`)."""
    out = NaiveResult()
    for name, scorer in scorers.items():
        if isinstance(scorer, tuple):  # a set metric: the released script reads the targets, then the outputs
            feats = {}
            for side in ("target", "generated"):
                feats[side] = []
                for smp in samples:
                    feats[side].append(scorer[0](decode(smp.target_path if side == "target" else locate(smp))).cpu())
                    tick(side == "generated")
            t, g = (torch.cat(feats[k]).double() for k in ("target", "generated"))
            out.pending[name] = (lambda t=t, g=g, value=scorer[1]: value(t, g)) if len(samples) >= 2 else lambda: None
            continue
        results = []
        for smp in samples:
            results.append(scorer(smp, locate(smp)))
            tick(1)
        out.values[name] = [float(r[0] if isinstance(r, tuple) else r) for r in results]
        if results and isinstance(results[0], tuple):
            out.captions[name] = [r[1] for r in results]
    return out
