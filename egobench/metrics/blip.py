"""BLIP-B / BLIP-L caption similarity: caption the generated frame, compare texts.

What the released LEGO code does (``metrics/all_metrics_in_one.py``,
``metrics/blip/``), reproduced here:

* Models: BLIP caption decoders ``model_base_caption_capfilt_large.pth``
  (ViT-B/16) and ``model_large_caption.pth`` (ViT-L/16), both at 384x384.
* Image: PIL image -> ``transforms.Resize((384, 384), BICUBIC)`` on the PIL
  image (so PIL's bicubic filter, squashing, no crop) -> ``ToTensor`` ->
  CLIP mean/std.
* Prompt ``"a picture of"`` (the LEGO config; BLIP's own default has a
  trailing space). Tokenized ``[CLS] a picture of [SEP]``; ``[CLS]`` is replaced
  by the ``[DEC]`` bos token and ``[SEP]`` dropped, so decoding starts from 4
  tokens. ``max_length=20`` and ``min_length=5`` count those 4 tokens.
* Beam search, 3 beams, ``repetition_penalty=1.0``, ``length_penalty=1.0``,
  ``early_stopping=False``, eos = ``[SEP]``, pad = ``[PAD]``, in the
  transformers version of the LEGO environment (4.19.2).
* Decoding: ``tokenizer.decode(ids, skip_special_tokens=True)`` (slow
  BertTokenizer, ``clean_up_tokenization_spaces=True``), then
  ``caption[len(prompt):]``, which leaves a leading space. ``mode: released``
  stores it as the released code returns it; ``mode: eval`` strips it (the
  text encoders' tokenizers drop it either way, so scores do not move).
* Images go through the model in batches of 30 in split order; the code notes
  that the order changes captions. Per item, beam search is independent of the
  other items of a batch (no text padding: every row starts from the same 4
  prompt tokens; images are all 384x384); what changes with the batch is the
  floating-point arithmetic (matmul kernels and reduction orders are picked per
  shape, especially on GPU), and beam search turns last-bit differences into
  different captions when two beams are nearly tied.
* Similarity (code): caption vs the enriched description, both through the
  dataset's EgoVLP text tower, cosine. Paper text: CLIP text encoder. Both are
  settings here (``text_encoder``), as is the reference text.

The beam search semantics (:mod:`.blip_beam`), ``mode: released`` (:mod:`.blip_released`) and the two
weight formats (:mod:`.blip_convert`) are described in their modules; the tokenizer is :mod:`.blip_text`,
the captioner :mod:`.blip_captioner`, the released constants and the artifacts :mod:`.blip_protocol`, the
tiny stand-ins :mod:`.blip_tiny`. This module is the metric.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, UserError
from . import Metric, MetricBatch
from .blip_captioner import BlipCaptioner, shared_captioner
from .blip_protocol import RELEASED_DROP_PATH, TOKENIZER_ARTIFACT, hf_artifact, original_artifact
from .blip_released import DeviceGenerator
from .settings import BLIPSettings


def cosine(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Row-wise cosine similarity (torch.nn.functional.cosine_similarity's eps)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.maximum(np.linalg.norm(a, axis=1), eps)
    nb = np.maximum(np.linalg.norm(b, axis=1), eps)
    return np.clip(np.sum(a * b, axis=1) / (na * nb), -1.0, 1.0)


class BLIPSimilarity(Metric):
    """Cosine between a BLIP caption of the generated frame and the reference text."""

    name = "blip"
    needs = ("generated", "description", "action")
    extras = ("caption",)
    higher_is_better = True
    version = "1"
    Settings = BLIPSettings

    def __init__(self, settings: BLIPSettings, *, weights=None, device: str = "cpu", cache=None):
        super().__init__(settings, weights=weights, device=device, cache=cache)
        _check_settings(settings, "metric blip")
        released = settings.mode == "released"
        # released: fixed batches of batch_size in split order drawing from one stream (groups the
        # evaluator forms whatever its batch size); the per-draw captions and scores are extra columns
        self.group_size = settings.batch_size if released else None
        self.extras = ("caption", "draw_captions", "draw_scores") if released and settings.draws > 1 else ("caption",)
        self._generator = DeviceGenerator(device) if released else None
        if settings.weights_format == "hf":
            res = weights.resolve(hf_artifact(settings.model))
            model, tok = shared_captioner(res, "hf", device)
        else:
            res = weights.resolve(original_artifact(settings.model))
            model, tok = shared_captioner(res, "original", device, tokenizer_res=weights.resolve(TOKENIZER_ARTIFACT))
        self.captioner = BlipCaptioner(model, tok, device, settings.batch_size, settings.beam_search,
                                       mode=settings.mode, drop_path_rate=RELEASED_DROP_PATH[settings.model])
        self._encoders: dict[str, Any] = {}
        self._fingerprints: dict[int, str] = {}
        self.begin()

    @classmethod
    def parse_settings(cls, data: dict[str, Any] | None, where: str) -> BLIPSettings:
        settings = super().parse_settings(data, where)
        _check_settings(settings, where)
        return settings

    # --- the released random stream -------------------------------------------------------------
    # A captioning pass (one evaluation) starts each draw's stream at its seed; batch k of the pass
    # continues it from where batch k-1 left it. The stream state after each batch is kept in the
    # run cache under a chain hash of every batch so far (the content of each generated image, in
    # order), so a resumed evaluation picks the stream up where the killed one left it.

    def begin(self) -> None:
        s: BLIPSettings = self.settings
        dev = self._generator.type if self._generator is not None else ""
        start = json.dumps({"mode": s.mode, "seed": s.seed, "draws": s.draws, "batch_size": s.batch_size,
                            "device": dev}, sort_keys=True)
        self._chain = hashlib.sha256(start.encode()).hexdigest()
        self._states: list[torch.Tensor | None] = [None] * s.draws  # None: fresh (seed + draw)
        self._states_at = self._chain

    def _advance(self, batch: MetricBatch) -> tuple[str, str]:
        """(chain before, chain after) this captioning batch, computed once per batch object."""

        def step() -> tuple[str, str]:
            before = self._chain
            h = hashlib.sha256(f"{before}\n{len(batch)}\n".encode())
            for key in batch.generated_keys:
                h.update(f"{key}\n".encode())
            self._chain = h.hexdigest()
            return before, self._chain

        return batch.shared(("blip-chain", id(self)), step)

    def score_keys(self, batch: MetricBatch, keys: list[str]) -> list[str]:
        """Released mode: a caption depends on its batch and every batch before it (the stream), so
        each score key also covers the chain of batches so far and the sample's place in its batch."""
        if self.settings.mode != "released":
            return keys
        _, after = self._advance(batch)
        return [hashlib.sha256(f"{k}\n{after}\n{i}".encode()).hexdigest() for i, k in enumerate(keys)]

    def _stored(self, chain: str, fill: Callable[[list[int]], list[np.ndarray]]) -> tuple[list[list[str]], list]:
        packed = self.cached("released-captions", [chain], fill, cache=self.run_cache)[0]
        return _unpack_draws(packed)

    def _states_before(self, before: str) -> list[torch.Tensor | None]:
        if self._states_at == before:
            return self._states
        if self.run_cache is None or not self.run_cache.enabled:
            raise RuntimeError("metric blip: released-mode batches scored out of order")

        def missing(_: list[int]) -> list[np.ndarray]:
            raise UserError("metric blip: the run cache has this evaluation's scores but not the captioner's "
                            "random-stream state after them (a damaged cache?); remove the run's cache/ "
                            "folder to score it again from the start")

        return self._stored(before, missing)[1]

    def _released_captions(self, batch: MetricBatch) -> list[list[str]]:
        """Captions of one captioning batch, one list per draw, continuing each draw's stream."""
        s: BLIPSettings = self.settings
        gen = self._generator
        assert gen is not None
        before, after = self._advance(batch)

        def caption_all() -> tuple[list[list[str]], list[torch.Tensor]]:
            states = self._states_before(before)
            # two columns with the same captioner at the same stream state share the work
            digest = hashlib.sha256(b"".join(bytes(st.numpy()) if st is not None else b"fresh" for st in states))
            key = ("blip-released", id(self.captioner.model), s.batch_size, s.model, s.seed, s.draws,
                   digest.hexdigest())

            def run() -> tuple[list[list[str]], list[torch.Tensor]]:
                captions, after_states = [], []
                saved = gen.get()
                try:
                    for d in range(s.draws):
                        gen.set(states[d] if states[d] is not None else gen.seeded(s.seed + d))
                        captions.append(self.captioner.caption(batch.generated))
                        after_states.append(gen.get())
                finally:
                    gen.set(saved)  # the rest of the process draws from where it was
                return captions, after_states

            return batch.shared(key, run)

        if self.run_cache is not None and self.run_cache.enabled:
            captions, states = self._stored(after, lambda _: [_pack_draws(*caption_all())])
        else:
            captions, states = caption_all()
        self._states, self._states_at = list(states), after
        return captions

    def compute(self, batch: MetricBatch) -> tuple[np.ndarray, dict[str, list]]:
        s: BLIPSettings = self.settings
        n = len(batch)
        cap = self.captioner
        if s.mode == "released":
            if n > s.batch_size:  # called outside the evaluator's groups: one captioning batch at a time
                parts = [self.compute(_slice(batch, i, i + s.batch_size)) for i in range(0, n, s.batch_size)]
                return (np.concatenate([p[0] for p in parts]),
                        {k: [v for p in parts for v in p[1][k]] for k in parts[0][1]})
            draws = self._released_captions(batch)
        else:
            # two columns with the same captioner and decoding (e.g. one reference text each) share
            # the captions of a batch
            draws = [batch.shared(("blip-captions", id(cap.model), cap.batch_size, cap.beam_search),
                                  lambda: cap.caption(batch.generated))]
        k = len(draws)
        refs = list(batch.description if s.reference == "description" else batch.action)
        if len(refs) != n:
            raise ValueError(f"metric blip: {len(refs)} {s.reference} texts for {n} samples")
        domains = list(batch.domain) if batch.domain else [""] * n
        groups: dict[str, list[int]] = {}
        for i, d in enumerate(domains):
            groups.setdefault(self._encoder_domain(d), []).append(i)
        per_draw = np.empty((k, n), dtype=np.float64)
        for edomain, idx in groups.items():
            encoder = self._text_encoder(domains[idx[0]])
            cap_emb = np.asarray(encoder.embed([draws[d][i] for d in range(k) for i in idx]))
            ref_texts = [refs[i] for i in idx]
            # the reference side is the same for every method: cache it by text, domain and encoder weights
            fp = self._encoder_fingerprint(encoder)
            keys = [hashlib.sha256(f"{s.text_encoder}\n{fp}\n{edomain}\n{t}".encode()).hexdigest() for t in ref_texts]

            def fill(missing: list[int], encoder=encoder, ref_texts=ref_texts) -> list[np.ndarray]:
                emb = np.asarray(encoder.embed([ref_texts[j] for j in missing]))
                return [emb[j] for j in range(len(missing))]

            ref_emb = np.stack(self.cached("reference-text", keys, fill))
            for d in range(k):
                per_draw[d, idx] = cosine(cap_emb[d * len(idx) : (d + 1) * len(idx)], ref_emb)
        extras: dict[str, list] = {"caption": list(draws[0])}
        if k == 1:
            return per_draw[0], extras
        extras["draw_captions"] = [json.dumps([draws[d][i] for d in range(k)]) for i in range(n)]
        extras["draw_scores"] = [json.dumps([float(per_draw[d, i]) for d in range(k)]) for i in range(n)]
        return per_draw.mean(axis=0), extras

    def summary(self, values: np.ndarray, extras: dict[str, list]) -> dict[str, Any]:
        """Released mode: ``draws``; with more than one, each draw's split mean (``draw_values``) and
        their standard deviation (``draw_std``, ddof 1): the captioner's noise floor on this split."""
        s: BLIPSettings = self.settings
        if s.mode != "released":
            return {}
        out: dict[str, Any] = {"draws": s.draws}
        if s.draws > 1 and extras.get("draw_scores"):
            per = np.array([json.loads(x) for x in extras["draw_scores"]], dtype=np.float64)
            means = per.mean(axis=0)
            out["draw_values"] = [float(m) for m in means]
            out["draw_std"] = float(np.std(means, ddof=1))
        return out


    @classmethod
    def artifacts(cls, settings: BLIPSettings) -> list[str]:
        """The captioner's weights. The text encoders' artifacts depend on the
        samples' domains (EgoVLP: one checkpoint per dataset) and are resolved
        when first used; their file digests enter the reference-text cache keys
        (see :meth:`_encoder_fingerprint`)."""
        if settings.weights_format == "hf":
            return [hf_artifact(settings.model)]
        return [original_artifact(settings.model), TOKENIZER_ARTIFACT]

    @classmethod
    def artifacts_for(cls, settings: BLIPSettings, domains: Sequence[str]) -> list[str]:
        """The captioner and the text tower(s) the samples of ``domains`` are compared through."""
        names = list(cls.artifacts(settings))
        if settings.text_encoder == "egovlp":
            from .egovlp import FAMILIES, text_artifacts

            for d in sorted(set(domains)):
                if d in FAMILIES:
                    names += text_artifacts(d)
        else:
            from .clip_metric import CLIP_MODELS

            names.append(CLIP_MODELS["ViT-L-14"].artifact)
        return list(dict.fromkeys(names))

    def _encoder_domain(self, domain: str) -> str:
        return domain if self.settings.text_encoder == "egovlp" else ""

    def _text_encoder(self, domain: str) -> Any:
        """The text tower (``embed(texts) -> (N, D)``) for a domain, loaded once."""
        key = self._encoder_domain(domain)
        if key not in self._encoders:
            if self.settings.text_encoder == "egovlp":
                from .egovlp import EgoVLPTextEncoder  # type: ignore[import-not-found]

                self._encoders[key] = EgoVLPTextEncoder(self.weights, self.device, domain)
            else:
                from .clip_metric import CLIPTextEncoder  # type: ignore[import-not-found]

                self._encoders[key] = CLIPTextEncoder(self.weights, self.device)
        return self._encoders[key]

    def _encoder_fingerprint(self, encoder: Any) -> str:
        """sha256 over the files of the artifacts a text encoder loaded (``artifacts`` or
        ``artifact`` attribute; empty when it declares none)."""
        if id(encoder) not in self._fingerprints:
            from ..data.split import file_digest
            from ..weights import ARTIFACTS

            names = getattr(encoder, "artifacts", None)
            if names is None:
                names = [encoder.artifact] if getattr(encoder, "artifact", None) else []
            h = hashlib.sha256()
            for name in names:
                res = self.weights.resolve(name)
                for f in ARTIFACTS.get(name).files:
                    h.update(f"{name}/{f}:{file_digest(res.file(f))}\n".encode())
            self._fingerprints[id(encoder)] = h.hexdigest()
        return self._fingerprints[id(encoder)]


def _check_settings(s: BLIPSettings, where: str) -> None:
    if s.batch_size < 1:
        raise ConfigError(f"{where}: batch_size must be >= 1, got {s.batch_size}")
    if s.draws < 1:
        raise ConfigError(f"{where}: draws must be >= 1, got {s.draws}")
    if s.mode == "eval" and s.draws != 1:
        raise ConfigError(f"{where}: draws {s.draws} needs mode: released (mode eval is deterministic)")
    if s.mode == "released" and s.beam_search != "released":
        raise ConfigError(f"{where}: mode released needs beam_search: released (the search the released code ran)")


def _slice(batch: MetricBatch, start: int, stop: int) -> MetricBatch:
    n = len(batch)
    fields = {f.name: getattr(batch, f.name) for f in dataclasses.fields(MetricBatch) if f.name != "memo"}
    return MetricBatch(**{k: (list(v[start:stop]) if len(v) == n else list(v)) for k, v in fields.items()})


def _pack_draws(captions: list[list[str]], states: list[torch.Tensor]) -> np.ndarray:
    """One run-cache entry: every draw's captions of a batch and its stream state after it."""
    blob = {"captions": captions, "states": [base64.b64encode(bytes(st.numpy())).decode() for st in states]}
    return np.frombuffer(json.dumps(blob).encode(), dtype=np.uint8).copy()


def _unpack_draws(packed: np.ndarray) -> tuple[list[list[str]], list[torch.Tensor]]:
    blob = json.loads(np.asarray(packed, dtype=np.uint8).tobytes().decode())
    states = [torch.frombuffer(bytearray(base64.b64decode(st)), dtype=torch.uint8) for st in blob["states"]]
    return blob["captions"], states
