"""Action faithfulness: does the generated frame show the action that was asked for?

The paper's metrics compare the generated frame with the ground-truth frame; input and target share
the scene, so a method that ignores the action can score well on them. These metrics (protocol
``egobench-v2``) ask about the action itself. Written here: no library implements them.

``action-acc`` (zero-shot action recognition on the generated frame)
    The generated frame becomes an EgoVLP clip exactly as the ``egovlp`` metric builds one (the
    image repeated, the dataset's model: Ego4D ``egovlp.pth``, 4 frames; EPIC ``epic_mir_plus.pth``,
    16 frames), and is ranked by cosine against EgoVLP text embeddings of the split's label
    vocabulary: every distinct action label (``vocabulary: action``), verb (``verb``) or noun
    (``noun``) of the samples of the same dataset (Ego4D samples against Ego4D labels with the
    Ego4D text tower, EPIC against EPIC). A sample scores 1 when its own label is among the top
    ``k`` (ties broken by vocabulary order, which is sorted), else 0; the mean is top-k accuracy.
    Label texts: Ego4D narrations without the ``#C C`` narrator prefix; EPIC verbs such as
    ``put-down`` as ``put down``; nouns ``pan:frying`` as ``frying pan``. A sample without a noun
    (no object in its narration) is left out of the noun vocabulary's accuracy (value NaN, and
    ``n`` counts the labelled samples). The vocabulary is the split being scored (a ``--limit``
    run has a smaller vocabulary, and its own run identity). Scored on the ground-truth frames
    (the ``oracle`` method) it is the ceiling; on the input frames (``input-copy``) the floor.

``action-sim`` (similarity to exemplars of the action; after TwinAct's S_Action)
    TwinAct (NeurIPS 2024) scores whether an image shows a customised action by its similarity
    to exemplar images of that action. Egocentric adaptation: for each sample, ``k`` ground-truth
    frames of the same verb from *other* clips of the same dataset, and ``k`` of other verbs, each
    chosen deterministically (candidates ordered by sha256 of the two sample ids); the score is
    the mean CLIP ViT-L/14 image cosine of the generated frame to the same-verb exemplars minus
    its mean cosine to the other-verb exemplars (0: no action signal). It differs from TwinAct's
    in three ways: exemplars are other clips' target frames rather than reference images of a
    customised action, the other-verb term subtracts what any frame of the dataset shares (the
    egocentric look, the kitchens), and the encoder is the protocol's CLIP ViT-L/14. A sample
    with no same-verb frame in another clip, or no other verb, scores NaN and is left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ..data.split import file_digest
from ..errors import ConfigError, DataError
from ..images import read_rgb
from . import MetricBatch
from .clip_metric import CLIPImage
from .egovlp import ARTIFACT_OF, TOKENIZER_ARTIFACT, EgoVLP, EgoVLPTextEncoder, model_family
from .settings import ActionAccSettings, ActionSensitivitySettings, ActionSimSettings


# ---------------------------------------------------------------------------
# pure functions
# ---------------------------------------------------------------------------
def label_of(sample: Any, vocabulary: str) -> str:
    """The sample's label in ``vocabulary`` ("" when it has none)."""
    if vocabulary == "action":
        from ..data.actions import strip_narrator

        return " ".join(strip_narrator(sample.action).split()).lower()
    if vocabulary == "verb":
        return sample.verb
    if vocabulary == "noun":
        return sample.noun
    raise ConfigError(f"unknown vocabulary {vocabulary!r}; use action, verb or noun")


def label_text(label: str, vocabulary: str) -> str:
    """What the text tower reads for ``label``: ``put-down`` -> ``put down``, ``pan:frying`` -> ``frying pan``."""
    if vocabulary == "verb":
        return label.replace("-", " ")
    if vocabulary == "noun" and ":" in label:
        return " ".join(reversed([p for p in label.split(":") if p]))
    return label


def vocabularies(samples: Sequence[Any], vocabulary: str, domain_of: Any) -> dict[str, list[str]]:
    """Per domain group (``domain_of(sample)``), the sorted distinct non-empty labels."""
    out: dict[str, set[str]] = {}
    for s in samples:
        label = label_of(s, vocabulary)
        if label:
            out.setdefault(domain_of(s), set()).add(label)
    return {k: sorted(v) for k, v in out.items()}


def topk_hits(scores: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the true label's score is among the ``k`` best of its row, else 0.0.

    ``scores``: (N, V); ``truth``: (N,) label indices. A label ranks ahead of the truth when its
    score is higher, or equal with a lower index (the vocabulary is sorted), so ties are decided
    the same way every time."""
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64)
    n, v = scores.shape
    own = scores[np.arange(n), truth][:, None]
    ahead = (scores > own) | ((scores == own) & (np.arange(v)[None, :] < truth[:, None]))
    return (ahead.sum(axis=1) < k).astype(np.float64)


def _order_key(sample_id: str, other_id: str) -> str:
    return hashlib.sha256(f"{sample_id}\x00{other_id}".encode()).hexdigest()


def pick_exemplars(samples: Sequence[Any], k: int, domain_of: Any) -> dict[str, tuple[list[str], list[str]]]:
    """For each sample id: (``k`` same-verb exemplar ids, ``k`` other-verb exemplar ids), drawn
    from the samples of the same domain group whose clip differs from the sample's (never its own
    clip, hence never itself), in the order of sha256(sample id, candidate id): the same split
    gives the same choice whatever the order of ``samples``, the batch size or the shard."""
    by_group: dict[str, list[Any]] = {}
    for s in samples:
        by_group.setdefault(domain_of(s), []).append(s)
    out: dict[str, tuple[list[str], list[str]]] = {}
    for s in samples:
        same, other = [], []
        clip = _clip_of(s)
        for c in by_group[domain_of(s)]:
            if c.id == s.id or _clip_of(c) == clip or not c.verb or not s.verb:
                continue
            (same if c.verb == s.verb else other).append(c.id)
        same.sort(key=lambda cid, sid=s.id: _order_key(sid, cid))
        other.sort(key=lambda cid, sid=s.id: _order_key(sid, cid))
        out[s.id] = (same[:k], other[:k])
    return out


def _clip_of(sample: Any) -> str:
    """The clip a sample comes from (a sample without one is its own clip)."""
    return sample.clip_id or f"sample:{sample.id}"


def action_similarity(generated: np.ndarray, same: np.ndarray, other: np.ndarray) -> float:
    """mean cos(generated, same-verb exemplars) - mean cos(generated, other-verb exemplars); NaN
    when either set is empty."""
    if len(same) == 0 or len(other) == 0:
        return float("nan")

    def cos(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.float64)
        g = np.asarray(generated, dtype=np.float64)
        return rows @ g / np.maximum(np.linalg.norm(rows, axis=1) * np.linalg.norm(g), 1e-12)

    return float(cos(same).mean() - cos(other).mean())


def _labelled_summary(values: np.ndarray) -> dict[str, Any]:
    """``value`` and ``n`` over the samples that have a label (NaN rows have none)."""
    finite = np.isfinite(values)
    return {"value": float(values[finite].mean()) if finite.any() else None, "n": int(finite.sum()),
            "n_unlabelled": int((~finite).sum())}


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------
def _group(sample: Any) -> str:
    """The model family of a sample's dataset (ego4d or epic): vocabularies and exemplars stay within it."""
    return model_family(sample.meta.get("domain", sample.dataset), "action metrics")


class _NeedsSplit:
    """Mixin: the metric reads the whole split being scored (``bind_split``) before any batch."""

    needs_split: ClassVar[bool] = True
    _samples: dict[str, Any] | None = None

    def bind_split(self, samples: Sequence[Any]) -> None:
        self._samples = {s.id: s for s in samples}
        self._bound(list(samples))

    def _bound(self, samples: list[Any]) -> None:
        raise NotImplementedError

    def _sample(self, sample_id: str) -> Any:
        if self._samples is None:
            raise DataError(f"{self.name}: the split was not bound (build_metrics(..., split=...)); "  # type: ignore[attr-defined]
                            "this metric needs the whole split's labels")
        try:
            return self._samples[sample_id]
        except KeyError:
            raise DataError(f"{self.name}: sample {sample_id!r} is not in the split it was given") from None  # type: ignore[attr-defined]


class ActionAccuracy(_NeedsSplit, EgoVLP):
    """Top-k zero-shot recognition of the sample's action / verb / noun in the generated frame."""

    name = "action-acc"
    needs: ClassVar[tuple[str, ...]] = ("generated",)
    higher_is_better = True
    version = "1"
    kind = "sample"
    Settings = ActionAccSettings
    uses_input = False

    def __init__(self, settings: ActionAccSettings, *, weights=None, device: str = "cpu", cache=None):
        super().__init__(settings, weights=weights, device=device, cache=cache)
        self._vocab: dict[str, list[str]] = {}
        self._text: dict[str, np.ndarray] = {}

    @classmethod
    def artifacts(cls, settings: ActionAccSettings) -> list[str]:
        return [ARTIFACT_OF["ego4d"], ARTIFACT_OF["epic"], TOKENIZER_ARTIFACT]

    @classmethod
    def artifacts_for(cls, settings: ActionAccSettings, domains: Sequence[str]) -> list[str]:
        return [*EgoVLP.artifacts_for(settings, domains), TOKENIZER_ARTIFACT]

    def _bound(self, samples: list[Any]) -> None:
        self._vocab = vocabularies(samples, self.settings.vocabulary, _group)
        self._text = {}

    def _label_embeddings(self, family: str) -> np.ndarray:
        """(V, D) unit text embeddings of the family's vocabulary (feature-cached per label text
        and the family's checkpoint)."""
        if family not in self._text:
            vocab = self._vocab.get(family, [])
            texts = [label_text(label, self.settings.vocabulary) for label in vocab]
            domain = "ego4d" if family == "ego4d" else "epickitchens"
            encoder: list[Any] = []

            def embed(miss: list[int]) -> list[np.ndarray]:
                if not encoder:
                    encoder.append(EgoVLPTextEncoder(self.weights, self.device, domain))
                return list(encoder[0].embed([texts[i] for i in miss]))

            keys = [hashlib.sha256(f"{family}\x00{t}".encode()).hexdigest() for t in texts]
            rows = self.cached("label-embedding", keys, embed, artifacts=[ARTIFACT_OF[family], TOKENIZER_ARTIFACT])
            emb = np.stack(rows).astype(np.float64) if rows else np.zeros((0, 1))
            self._text[family] = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return self._text[family]

    def _generated_embeddings(self, batch: MetricBatch) -> list[np.ndarray]:
        """EgoVLP embeddings of the generated clips, once per batch for every action-acc column
        with the same clip settings."""
        s = self.settings
        key = ("action-acc-generated", s.frames_ego4d, s.frames_epic, s.antialias)
        return batch.shared(key, lambda: self._embed(batch, list(range(len(batch))), generated=True))

    def compute(self, batch: MetricBatch) -> np.ndarray:
        n = len(batch)
        out = np.full(n, np.nan)
        if n == 0:
            return out
        gen = self._generated_embeddings(batch)
        rows: dict[str, list[int]] = {}
        for i, sid in enumerate(batch.ids):
            label = label_of(self._sample(sid), self.settings.vocabulary)
            if label:
                rows.setdefault(self._family(batch, i), []).append(i)
        for family, idx in rows.items():
            vocab = self._vocab.get(family, [])
            text = self._label_embeddings(family)
            index = {label: j for j, label in enumerate(vocab)}
            truth = []
            for i in idx:
                label = label_of(self._sample(batch.ids[i]), self.settings.vocabulary)
                if label not in index:
                    raise DataError(f"{self.name}: label {label!r} of {batch.ids[i]!r} is not in the "
                                    "vocabulary of the split it was bound to")
                truth.append(index[label])
            g = np.stack([gen[i] for i in idx]).astype(np.float64)
            g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
            out[idx] = topk_hits(g @ text.T, np.asarray(truth), self.settings.k)
        return out

    def summary(self, values: np.ndarray, extras: dict[str, list]) -> dict[str, Any]:
        return {**_labelled_summary(values),
                "vocabulary_size": {f: len(v) for f, v in sorted(self._vocab.items())}}


class ActionSimilarity(_NeedsSplit, CLIPImage):
    """Mean CLIP cosine to same-verb exemplar frames minus mean cosine to other-verb ones."""

    name = "action-sim"
    needs: ClassVar[tuple[str, ...]] = ("generated",)
    higher_is_better = True
    version = "1"
    kind = "sample"
    Settings = ActionSimSettings

    def __init__(self, settings: ActionSimSettings, *, weights=None, device: str = "cpu", cache=None):
        super().__init__(settings, weights=weights, device=device, cache=cache)
        self._exemplars: dict[str, tuple[list[str], list[str]]] = {}
        self._memo: dict[str, np.ndarray] = {}

    def _bound(self, samples: list[Any]) -> None:
        self._exemplars = pick_exemplars(samples, self.settings.k, _group)

    def exemplars(self, sample_id: str) -> tuple[list[str], list[str]]:
        self._sample(sample_id)
        return self._exemplars[sample_id]

    def _exemplar_embeddings(self, ids: list[str]) -> dict[str, np.ndarray]:
        """CLIP embeddings of the exemplars' ground-truth frames (feature-cached by file content)."""
        todo = [sid for sid in dict.fromkeys(ids) if sid not in self._memo]
        if todo:
            paths = [self._sample(sid).target_path for sid in todo]
            keys = [file_digest(p) for p in paths]
            rows = self.cached("exemplar-embedding", keys,
                               lambda miss: list(self.embed([read_rgb(paths[i]) for i in miss], "target")))
            self._memo.update(zip(todo, rows, strict=True))
        return {sid: self._memo[sid] for sid in ids}

    def compute(self, batch: MetricBatch) -> np.ndarray:
        n = len(batch)
        if n == 0:
            return np.empty(0, dtype=np.float64)
        gen = self.embed(batch.generated, "generated")
        picks = [self.exemplars(sid) for sid in batch.ids]
        emb = self._exemplar_embeddings([e for same, other in picks for e in (*same, *other)])
        out = np.empty(n, dtype=np.float64)
        for i, (same, other) in enumerate(picks):
            out[i] = action_similarity(gen[i], np.array([emb[e] for e in same]), np.array([emb[e] for e in other]))
        return out

    def summary(self, values: np.ndarray, extras: dict[str, list]) -> dict[str, Any]:
        return _labelled_summary(values)


# ---------------------------------------------------------------------------
# counterfactual action sensitivity
# ---------------------------------------------------------------------------
def _split_narration(sample: Any) -> tuple[str, list[str], list[str]]:
    """(narrator prefix as written, e.g. ``#C C``, or ""; the verb's words with the particles that
    follow it; the rest), lower-cased: ``#C C turns on the tap`` -> ("#C C", [turns, on], [the, tap]);
    EPIC's ``put-down`` takes two words."""
    from ..data.actions import _PREFIX, PARTICLES, strip_narrator

    m = _PREFIX.match(sample.action.strip())
    words = strip_narrator(sample.action).split()
    n = max(1, len([w for w in sample.verb.split("-") if w])) if sample.verb else 1
    while n < len(words) and words[n] in PARTICLES:
        n += 1
    return (m.group(0).strip() if m else ""), words[:n], words[n:]


def counterfactual_prompts(samples: Sequence[Any], domain_of: Any = None) -> dict[str, dict[str, str]]:
    """Per sample id: a counterfactual action with the same object and another verb, as
    ``{"prompt", "verb", "source"}``.

    The verb is drawn from the samples of the same dataset whose noun is the sample's and whose
    verb differs (``source: "same-noun"``), the candidate first in the order of sha256(sample
    id, candidate id); the prompt is the sample's own narration with its verb words replaced by
    that candidate's, particles included (``#C C opens the drawer`` -> ``#C C closes the drawer``;
    ``#C C turns on the tap`` -> ``#C C washes the tap``). Without such a
    candidate (or without a noun) a verb of the dataset's vocabulary other than the sample's is
    drawn the same way (``source: "vocabulary"``) and written as a sample with that verb writes it.
    Deterministic:
    the same split gives the same prompts whatever its order, batch size or sharding. A sample
    whose dataset has a single verb gets no counterfactual (absent from the result)."""
    domain_of = domain_of or _group
    by_group: dict[str, list[Any]] = {}
    for s in samples:
        by_group.setdefault(domain_of(s), []).append(s)
    out: dict[str, dict[str, str]] = {}
    for s in samples:
        group = by_group[domain_of(s)]
        prefix, _, head = _split_narration(s)
        same_noun = sorted((c for c in group if s.noun and c.noun == s.noun and c.verb and c.verb != s.verb),
                           key=lambda c, sid=s.id: _order_key(sid, c.id))
        if same_noun:
            c = same_noun[0]
            verb_text = _split_narration(c)[1]
            source, verb = "same-noun", c.verb
        else:
            verbs = sorted({c.verb for c in group if c.verb and c.verb != s.verb},
                           key=lambda v, sid=s.id: _order_key(sid, v))
            if not verbs:
                continue
            verb, source = verbs[0], "vocabulary"
            c = min((c for c in group if c.verb == verb), key=lambda c, sid=s.id: _order_key(sid, c.id))
            verb_text = _split_narration(c)[1]
        prompt = " ".join([*([prefix] if prefix else []), *verb_text, *head])
        out[s.id] = {"prompt": prompt, "verb": verb, "source": source}
    return out


def sensitivity_outcome(true_score: float, counterfactual_score: float, identical: bool) -> float:
    """1 when the true-action output is closer to the ground truth than the counterfactual output,
    0 when farther, 0.5 on a tie (identical images always tie)."""
    if identical or true_score == counterfactual_score:
        return 0.5
    return 1.0 if true_score > counterfactual_score else 0.0


class ActionSensitivity(EgoVLP):
    """Share of samples whose true-action image is closer to the ground truth than the image made
    for a counterfactual action (same object, another verb): 0.5 = the action is ignored."""

    name = "action-sensitivity"
    needs: ClassVar[tuple[str, ...]] = ("generated", "target", "counterfactual")
    higher_is_better = True
    version = "1"
    kind = "sample"
    Settings = ActionSensitivitySettings
    uses_input = False

    def score_keys(self, batch: MetricBatch, keys: list[str]) -> list[str]:
        # a row depends on the counterfactual image too
        return [hashlib.sha256(f"{k}|{c}".encode()).hexdigest()
                for k, c in zip(keys, batch.counterfactual_keys or [""] * len(keys), strict=True)]

    def compute(self, batch: MetricBatch) -> np.ndarray:
        n = len(batch)
        out = np.full(n, np.nan)
        have = [i for i in range(n) if i < len(batch.counterfactual) and batch.counterfactual[i] is not None]
        if not have:
            return out
        gt = self._embed(batch, have, generated=False)
        gen = self._embed(batch, have, generated=True)
        cf_batch = MetricBatch(ids=[batch.ids[i] for i in have], generated=[batch.counterfactual[i] for i in have],
                               target=[batch.target[i] for i in have], domain=[batch.domain[i] for i in have])
        cf = self._embed(cf_batch, list(range(len(have))), generated=True)
        for j, i in enumerate(have):
            identical = np.array_equal(batch.generated[i], batch.counterfactual[i])
            out[i] = sensitivity_outcome(self._score(gen[j], gt[j]), self._score(cf[j], gt[j]), identical)
        return out

    def _score(self, a: np.ndarray, b: np.ndarray) -> float:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if self.settings.distance == "euclidean":
            return -float(np.linalg.norm(a - b))
        return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))

    def summary(self, values: np.ndarray, extras: dict[str, list]) -> dict[str, Any]:
        out = _labelled_summary(values)
        out["n_without_counterfactual"] = out.pop("n_unlabelled")
        p, k = out["value"], out["n"]
        out["se"] = float(np.sqrt(p * (1 - p) / k)) if k else None  # binomial standard error
        return out
