"""vlm-judge: an instruction-tuned vision-language model rates each generated frame (VIEScore-style).

The judge (any transformers image-text-to-text model: ``AutoModelForImageTextToText`` +
``AutoProcessor``) is shown the input frame, the action and the generated frame and asked three
fixed questions, each answered with an integer from 0 to 10:

* ``action``: does the second frame show the action being performed?
* ``scene``: is it the same scene, seen from the same viewpoint, as the first frame?
* ``quality``: is it free of visual artifacts?

The question texts are protocol data: :data:`PROMPTS` keyed by the setting ``prompt_version``
(a new wording is a new version, never an edit of an old one). Decoding is greedy
(``do_sample=False``, ``max_new_tokens`` fixed by the settings), several samples per ``generate``
call with left padding.

Score: VIEScore's combination (Ku et al., "VIEScore: Towards Explainable Metrics for Conditional
Image Synthesis Evaluation", ACL 2024; TIGER-AI-Lab/VIEScore): overall = sqrt(SC * PQ), where SC
is the min of the semantic-consistency sub-scores and PQ the min of the perceptual-quality
sub-scores; here SC = min(action, scene) and PQ = quality, each divided by 10, so the value lies in
[0, 1]. The sub-scores, the raw answer and the judge's reasons are extra per-sample columns.

Parsing is strict (:func:`parse_answer`): a JSON object with the keys ``action``, ``scene`` and
``quality``, or lines ``action: N`` / ``scene: N`` / ``quality: N``; integers 0-10 written with
ASCII digits only. Anything else (a number in words, 7.5, 7/10, 11, a missing key) is a parse
failure: the sample's value is NaN (never 0) with its raw answer and the reason kept, and
``summary`` reports ``value`` and ``n`` over the parsed samples and ``n_parse_failures``.

Answers are cached by (the judge's weights digest, the settings including ``prompt_version``,
sha256 of the input and generated pixels, the action text) in the feature cache (or, without one,
the run's cache), so scoring the same images again asks the model nothing.

Default judge: Qwen2-VL-2B-Instruct (artifact ``vlm-judge-qwen2-vl-2b``). Why: Apache-2.0 (the 2B
and 7B Qwen2-VL weights; the 72B has the more restrictive Qwen license), so scores made with it can
be published; its class ``Qwen2VLForConditionalGeneration`` ships with transformers and loads
through ``AutoModelForImageTextToText`` without remote code; it sees frames at their own aspect
ratio (dynamic resolution, no crop); at two billion parameters (about 4.4 GB in bf16) it runs on
one GPU beside the other metrics. A stronger judge is a new ``model`` value (and a new protocol
version), never a silent swap.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from ..shared_models import shared_model
from ..weights import Artifact, register_artifact
from . import Metric, MetricBatch
from .settings import VLMJudgeSettings

#: the three questions, in the order of the answer
KEYS = ("action", "scene", "quality")


@dataclass(frozen=True)
class JudgePrompt:
    """One version of the judge's question texts (protocol data; never edited once released)."""

    before: str  # shown before the input frame
    after: str  # shown before the generated frame
    instruction: str  # the questions and the answer format; ``{action}`` is the action text


PROMPTS: dict[str, JudgePrompt] = {
    "1": JudgePrompt(
        before="First frame (from a first-person video, before the action):",
        after="Second frame (generated to show the moment of the action):",
        instruction=(
            'The second frame should show the camera wearer performing the action "{action}" in the scene of '
            "the first frame.\n"
            "Rate the second frame with integers from 0 to 10:\n"
            '- action: does the second frame show the action "{action}" being performed? '
            "(0 = not at all, 10 = clearly)\n"
            "- scene: is the second frame the same scene, seen from the same viewpoint, as the first frame? "
            "(0 = unrelated, 10 = the same scene and viewpoint)\n"
            "- quality: is the second frame free of visual artifacts such as distortions, blur, broken hands "
            "or objects? (0 = severe artifacts, 10 = none)\n"
            'Answer with one JSON object and nothing else: {{"action": N, "scene": N, "quality": N, '
            '"reasons": "one short sentence per score"}}'
        ),
    ),
}

#: the files of the Hugging Face repo Qwen/Qwen2-VL-2B-Instruct the judge loads (its bf16 weights are
#: two safetensors shards); the tiny stand-in writes the same names
QWEN2_VL_2B_SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
QWEN2_VL_2B_FILES = (
    "config.json", "generation_config.json", *QWEN2_VL_2B_SHARDS, "model.safetensors.index.json",
    "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
    "chat_template.json",
)

QWEN2_VL_2B = register_artifact(
    Artifact(
        name="vlm-judge-qwen2-vl-2b",
        description="Qwen2-VL-2B-Instruct (transformers Qwen2VLForConditionalGeneration), the vlm-judge metric's judge",
        files=QWEN2_VL_2B_FILES,
        license="Apache-2.0 (Qwen2-VL-2B-Instruct)",
        hf_repo="Qwen/Qwen2-VL-2B-Instruct",
        # no sha256 and no pinned revision: neither could be verified offline when this was written;
        # fill them in from the hub once fetched (a digest is never guessed)
        tiny="egobench.metrics.vlm_judge_tiny:build_tiny_vlm_judge",
    )
)

#: the setting ``model`` -> the artifact holding that judge
JUDGE_MODELS: dict[str, str] = {"qwen2-vl-2b-instruct": QWEN2_VL_2B.name}


# ---------------------------------------------------------------------------
# prompts and answers (pure)
# ---------------------------------------------------------------------------
def judge_action_text(action: str) -> str:
    """The action as the judge reads it: the narration without Ego4D's ``#C C`` narrator tag."""
    from ..data.actions import strip_narrator

    return strip_narrator(action) or action.strip()


def judge_messages(action: str, prompt_version: str) -> list[dict[str, Any]]:
    """The chat of one sample: text, input frame, text, generated frame, the questions (one user turn)."""
    try:
        p = PROMPTS[prompt_version]
    except KeyError:
        raise ConfigError(f"vlm-judge: unknown prompt_version {prompt_version!r}; known: {', '.join(PROMPTS)}") from None
    return [{"role": "user", "content": [
        {"type": "text", "text": p.before},
        {"type": "image"},
        {"type": "text", "text": p.after},
        {"type": "image"},
        {"type": "text", "text": p.instruction.format(action=action)},
    ]}]


@dataclass(frozen=True)
class JudgeAnswer:
    """A parsed answer: the three integers, or ``error`` saying why there are none."""

    scores: dict[str, int] | None
    reasons: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.scores is not None


_DIGITS = re.compile(r"[0-9]{1,2}")
_LINE = re.compile(r"^[\s\-*•]*(action|scene|quality)[\s*]*:\s*(.*?)\s*$", re.IGNORECASE)
_TOKEN = re.compile(r"^(\S+?)[,;.]?(?:\s+(.*))?$")


def _check_int(key: str, value: Any) -> int | str:
    """The score, or why it is refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{key}: {value!r} is not an integer"
    if not 0 <= value <= 10:
        return f"{key}: {value} is outside 0-10"
    return value


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object that starts at a ``{`` of ``text`` and decodes (text around it allowed)."""
    dec = json.JSONDecoder()
    out = []
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _parse_json(obj: dict[str, Any]) -> JudgeAnswer:
    scores: dict[str, int] = {}
    for key in KEYS:
        if key not in obj:
            return JudgeAnswer(None, error=f"JSON answer without '{key}'")
        got = _check_int(key, obj[key])
        if isinstance(got, str):
            return JudgeAnswer(None, error=got)
        scores[key] = got
    reasons = obj.get("reasons", obj.get("reason", ""))
    if not isinstance(reasons, str):
        reasons = json.dumps(reasons, ensure_ascii=False, sort_keys=True)
    return JudgeAnswer(scores, reasons=reasons)


def _parse_lines(text: str) -> JudgeAnswer:
    found: dict[str, tuple[int, str]] = {}
    other: list[str] = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            if re.match(r"^[\s\-*•]*reasons?[\s*]*:", line, re.IGNORECASE):
                other.append(line.split(":", 1)[1].strip())
            continue
        key, rest = m.group(1).lower(), m.group(2)
        t = _TOKEN.match(rest)
        if not t or not _DIGITS.fullmatch(t.group(1)):
            return JudgeAnswer(None, error=f"{key}: {rest[:40]!r} does not start with an integer")
        got = _check_int(key, int(t.group(1)))
        if isinstance(got, str):
            return JudgeAnswer(None, error=got)
        if key in found and found[key][0] != got:
            return JudgeAnswer(None, error=f"{key}: given twice ({found[key][0]} and {got})")
        found[key] = (got, (t.group(2) or "").strip(" -–—:()"))
    missing = [k for k in KEYS if k not in found]
    if missing:
        return JudgeAnswer(None, error=f"no {', '.join(missing)} score")
    reasons = [f"{k}: {found[k][1]}" for k in KEYS if found[k][1]] + other
    return JudgeAnswer({k: found[k][0] for k in KEYS}, reasons="; ".join(reasons))


def parse_answer(text: str) -> JudgeAnswer:
    """The strict rule. If the text holds a JSON object with any of the three keys, the first such
    object is the answer (all three keys, integers 0-10); otherwise ``key: N`` lines are read (each
    key once, ``N`` an integer 0-10 in ASCII digits, text after it kept as its reason). Text around
    the answer, in any language, is ignored; anything else is a failure with the reason."""
    for obj in _json_objects(text):
        if any(k in obj for k in KEYS):
            return _parse_json(obj)
    if not text.strip():
        return JudgeAnswer(None, error="empty answer")
    return _parse_lines(text)


def viescore_overall(action: float, scene: float, quality: float) -> float:
    """VIEScore's overall = sqrt(SC * PQ): SC = min(action, scene) / 10, PQ = quality / 10."""
    sc = min(action, scene) / 10.0
    pq = quality / 10.0
    return math.sqrt(sc * pq)


def image_digest(img: np.ndarray) -> str:
    """sha256 of decoded pixels (shape, dtype and bytes): the answer cache's image key."""
    a = np.ascontiguousarray(img)
    h = hashlib.sha256(f"{a.shape}|{a.dtype}\n".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def answer_key(prompt_version: str, input_digest: str, generated_digest: str, action: str) -> str:
    return hashlib.sha256(json.dumps([prompt_version, input_digest, generated_digest, action]).encode()).hexdigest()


def _pack(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def _unpack(arr: np.ndarray) -> str:
    return np.asarray(arr, dtype=np.uint8).tobytes().decode("utf-8")


# ---------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------
def load_judge(folder: Path, device: str, dtype: Any) -> tuple[Any, Any]:
    """(model, processor) from a transformers folder, offline, eval mode, left padding; one copy per
    process and (folder, device, dtype)."""
    from .. import _compat

    def load() -> tuple[Any, Any]:
        _compat.ensure_torchvision()
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model = AutoModelForImageTextToText.from_pretrained(
            str(folder), dtype=dtype or torch.float32, local_files_only=True).to(device).eval()
        processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        processor.tokenizer.padding_side = "left"
        return model, processor

    return shared_model((str(folder), "vlm-judge", str(device), str(dtype)), load)


def to_pil(img: np.ndarray, max_side: int) -> Any:
    """A frame as the judge sees it: RGB, the longer side at most ``max_side`` (PIL bicubic, aspect kept)."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(img)).convert("RGB")
    w, h = im.size
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)
    return im


def generate_answers(model: Any, processor: Any, messages: Sequence[list[dict[str, Any]]],
                     images: Sequence[list[Any]], max_new_tokens: int, device: str) -> list[str]:
    """One greedy ``generate`` call over a batch of chats (left-padded); the new text of each."""
    import torch

    texts = [processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in messages]
    inputs = processor(text=texts, images=[list(i) for i in images], padding=True, return_tensors="pt").to(device)
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
    new = out[:, inputs["input_ids"].shape[1]:]
    return [str(t) for t in processor.batch_decode(new, skip_special_tokens=True)]


class VLMJudge(Metric):
    """VIEScore-style overall score of a VLM judge's action, scene and quality ratings (0-10 each)."""

    name = "vlm-judge"
    needs: ClassVar[tuple[str, ...]] = ("generated", "input", "action")
    higher_is_better = True
    version = "1"
    kind = "sample"
    Settings = VLMJudgeSettings
    extras: ClassVar[tuple[str, ...]] = ("judge-action", "judge-scene", "judge-quality", "answer", "reasons",
                                         "parse-error")

    def __init__(self, settings: VLMJudgeSettings, *, weights=None, device: str = "cpu", cache=None):
        super().__init__(settings, weights=weights, device=device, cache=cache)
        _check_settings(settings, "metric vlm-judge")
        self._model: tuple[Any, Any] | None = None
        #: ``generate`` calls made (tests count them)
        self.generate_calls = 0

    @classmethod
    def parse_settings(cls, data: dict[str, Any] | None, where: str) -> VLMJudgeSettings:
        settings = super().parse_settings(data, where)
        _check_settings(settings, where)
        return settings

    @classmethod
    def artifacts(cls, settings: VLMJudgeSettings) -> list[str]:
        return [JUDGE_MODELS[settings.model]]

    def judge(self) -> tuple[Any, Any]:
        """(model, processor), loaded on first use (a fully cached split never loads it); in the
        protocol's reduced precision on a GPU (the record's ``precision`` says so)."""
        if self._model is None:
            res = self.weights.resolve(JUDGE_MODELS[self.settings.model])
            self._model = load_judge(res.path, self.device, self.compute_dtype)
        return self._model

    def _ask(self, pairs: list[tuple[np.ndarray, np.ndarray]], actions: list[str]) -> list[str]:
        s: VLMJudgeSettings = self.settings
        model, processor = self.judge()
        out: list[str] = []
        for start in range(0, len(pairs), s.batch_size):
            chunk = range(start, min(start + s.batch_size, len(pairs)))
            messages = [judge_messages(actions[i], s.prompt_version) for i in chunk]
            images = [[to_pil(pairs[i][0], s.max_image_side), to_pil(pairs[i][1], s.max_image_side)] for i in chunk]
            self.generate_calls += 1
            with self.autocast():
                out += generate_answers(model, processor, messages, images, s.max_new_tokens, self.device)
        return out

    def answers(self, batch: MetricBatch) -> list[str]:
        """The judge's raw answer per sample, through the answer cache."""
        s: VLMJudgeSettings = self.settings
        n = len(batch)
        if len(batch.input) != n or len(batch.action) != n:
            raise ValueError(f"metric vlm-judge: {len(batch.input)} input frames and {len(batch.action)} actions "
                             f"for {n} samples")
        actions = [judge_action_text(a) for a in batch.action]
        keys = [answer_key(s.prompt_version, image_digest(batch.input[i]), image_digest(batch.generated[i]),
                           actions[i]) for i in range(n)]

        def fill(missing: list[int]) -> list[np.ndarray]:
            got = self._ask([(batch.input[i], batch.generated[i]) for i in missing], [actions[i] for i in missing])
            return [_pack(t) for t in got]

        feature = self.cache if self.cache is not None and self.cache.enabled else None
        cache = feature if feature is not None else self.run_cache
        return [_unpack(a) for a in self.cached("answer", keys, fill, cache=cache)]

    def compute(self, batch: MetricBatch) -> tuple[np.ndarray, dict[str, list]]:
        n = len(batch)
        values = np.full(n, np.nan)
        extras: dict[str, list] = {k: [""] * n for k in self.extras}
        if n == 0:
            return values, extras
        for i, raw in enumerate(self.answers(batch)):
            parsed = parse_answer(raw)
            extras["answer"][i] = raw
            extras["reasons"][i] = parsed.reasons
            extras["parse-error"][i] = parsed.error
            if parsed.scores is not None:
                sc = parsed.scores
                for k in KEYS:
                    extras[f"judge-{k}"][i] = str(sc[k])
                values[i] = viescore_overall(sc["action"], sc["scene"], sc["quality"])
        return values, extras

    def summary(self, values: np.ndarray, extras: dict[str, list]) -> dict[str, Any]:
        """``value`` and ``n`` over the parsed samples, ``n_parse_failures``, the sub-scores' means."""
        values = np.asarray(values, dtype=np.float64)
        parsed = np.isfinite(values)
        out: dict[str, Any] = {"value": float(values[parsed].mean()) if parsed.any() else None,
                               "n": int(parsed.sum()), "n_parse_failures": int((~parsed).sum())}
        means = {}
        for k in KEYS:
            col = [float(v) for v in extras.get(f"judge-{k}", []) if isinstance(v, str) and v.strip()]
            means[k] = float(np.mean(col)) if col else None
        out["sub_scores"] = means
        return out


def _check_settings(settings: VLMJudgeSettings, where: str) -> None:
    if settings.prompt_version not in PROMPTS:
        raise ConfigError(f"{where}: unknown prompt_version {settings.prompt_version!r}; known: {', '.join(PROMPTS)}")
    if settings.model not in JUDGE_MODELS:
        raise ConfigError(f"{where}: unknown judge model {settings.model!r}; known: {', '.join(JUDGE_MODELS)}")
