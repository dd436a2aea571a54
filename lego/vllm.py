"""The visual LLM of LEGO (LLaVA, Llama-2-13B-chat) through Hugging Face transformers.

What the released code does (``vllm/llava/eval/run_llava_in_loop.py`` and the
LLaVA fork under ``vllm/llava``, run with transformers 4.31, fp16 on CUDA):

* **Model.** ``LlavaLlamaForCausalLM``: a Llama-2 language model whose
  checkpoint keys are plain Llama keys (``model.embed_tokens``,
  ``model.layers.*``, ``model.norm``, ``lm_head``) plus ``model.mm_projector``
  (a single ``nn.Linear(1024, 5120)``: this LLaVA version has no MLP
  projector), and a CLIP vision tower *not* taken from the checkpoint but
  loaded from ``config.mm_vision_tower`` (``openai/clip-vit-large-patch14``,
  224 px, 14 px patches: 256 patch tokens). Image features are
  ``hidden_states[mm_vision_select_layer]`` (-2, the output of the
  second-to-last encoder layer) with the CLS token dropped
  (``mm_vision_select_feature='patch'``), then the projector.
* **Image.** ``CLIPImageProcessor.preprocess(image)`` of that CLIP repo:
  resize the short side to 224 (PIL bicubic, long side truncated with
  ``int``), center crop 224, scale by 1/255, CLIP mean/std. The inference
  script calls the processor directly, so the ``image_aspect_ratio`` option
  (pad-to-square) of LLaVA's training code plays no part.
* **Prompt.** Conversation template ``llava_llama_2`` (system prompt below,
  ``[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n<image>\\n{query} [/INST]``), with
  ``mm_use_im_start_end`` false; the query is "How does the person properly
  {action} that is displayed in the video frame?" where for Ego4D ``action``
  is the narration with ``#C``/``C`` removed and the verb lemmatized (see
  :mod:`lego.lemmatize`); EPIC labels are used as they are. The prompt is split
  at ``<image>``, each piece tokenized (with BOS), the later pieces' BOS
  dropped, and the 256 projected image tokens spliced in at the split.
* **Generation.** ``do_sample=True, temperature=0.2, max_new_tokens=1024``;
  transformers 4.31 then also applies its default ``top_k=50`` (the model's
  ``generation_config.json`` of the base LLaVA checkpoint, 132 bytes, sets no
  sampling options); stop at ``</s>``. The description is the decoded new
  tokens with ``</s>`` removed, stripped.
* **Seeding.** ``seed_everything(42)`` once per process, before the loop over
  a chunk of the split (5 chunks, one process each). Every sample after the
  first of its chunk therefore draws from an RNG state that depends on how
  many tokens all earlier samples of the chunk generated: its text depends on
  the order and the chunking. (Sampling ran on CUDA in fp16 as well, so the
  released descriptions cannot be reproduced bit for bit anyway.)
* **Features.** Image features = the projector output for the image
  (256 x 5120, fp16, saved with ``np.save`` after ``squeeze``). Text features:
  for each generation step ``w``, ``hidden_states[w][-1][0, -1]`` - the last
  layer (after the final RMSNorm) at the last position fed in that step. Step
  0 feeds the whole prompt, so its last position is the last prompt token;
  step ``w > 0`` feeds generated token ``w-1``. Row ``i`` is therefore the
  hidden state *that produced* generated token ``i`` (the position just before
  it in the full sequence), and there is one row per generated token,
  including the final ``</s>`` when one was generated (#generated x 5120).

What egobench does:

* **Image tokens are spliced as embeddings.** Rather than adding an
  ``<image>`` token to the vocabulary (which resizes the embedding and
  ``lm_head`` and adds a samplable token), the prompt embeddings are built as
  LLaVA does (text embeddings, image features, text embeddings) and passed to
  ``generate(inputs_embeds=...)``; the vocabulary stays the checkpoint's.
* **Sampling** uses transformers' own ``generate`` (temperature 0.2, top-k 50
  and top-p 1.0 unless the checkpoint's ``generation_config.json`` says
  otherwise, ``max_new_tokens`` 1024, stop at EOS), one sample at a time (batch
  1, no padding, as released). Logits are processed in fp32 by transformers 5
  (4.31 sampled from fp16 logits). Attention defaults to the eager
  implementation (the 4.31 code path; softmax in fp32).
* **Seeding** is per sample by default (``seeding='per-sample'``): each sample
  starts from ``torch.manual_seed(seed)``, so a sample's description does not
  depend on its position, the batch or the chunking - it equals what the
  release gives the *first* sample of a chunk. ``seeding='once'`` seeds once
  per :meth:`LegoVLLM.describe` call (the release's behaviour within a chunk).
  The global RNG state is restored afterwards either way.
* **Features** are returned as float32 arrays (float16 when the model runs in
  float16, as the released files are), always 2-D.

Checkpoint reading and conversion are :mod:`lego.vllm_convert`, the artifacts :mod:`lego.vllm_artifacts`,
the prompt :mod:`lego.vllm_prompt`, the image transform :mod:`lego.vllm_preprocess`, the tiny stand-ins
:mod:`lego.vllm_tiny`.

Known differences from the release (beyond fp16/CUDA numerics, which make
bit-exact reproduction impossible anyway): transformers 5 samples from fp32
logits (4.31: fp16); LLaVA's loader adds an ``<im_patch>`` token and resizes
the embeddings when ``mm_use_im_patch_token`` is absent or true in
``config.json`` (LEGO's finetuning sets it false) - we keep the checkpoint's
vocabulary as it is; ``mm_use_im_start_end=true`` checkpoints are refused.

The real tokenizer is a SentencePiece ``tokenizer.model``; transformers 5
converts it to a fast tokenizer, which needs ``sentencepiece`` (or
``protobuf``) installed. The tiny zoo writes a ``tokenizer.json`` beside a small
``tokenizer.model`` so no extra package is needed offline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from egobench import _compat
from egobench.errors import UserError
from egobench.weights import Resolved, WeightStore

from .features import VLLMFeatures
from .vllm_artifacts import ARTIFACT_SUBDIR, VARIANT_ARTIFACTS, VISION_ARTIFACT, Variant
from .vllm_convert import LoadReport, build_llava_model, read_json
from .vllm_preprocess import ClipPreprocess
from .vllm_prompt import (
    IMAGE_TOKEN_INDEX,
    QUERY,
    STOP_STR,
    action_lemmatizer,
    action_phrase,
    llava_llama_2_prompt,
    tokenize_with_image,
)

__all__ = ["LegoVLLM", "VLLMOutput"]

TEMPERATURE = 0.2
MAX_NEW_TOKENS = 1024
#: transformers 4.31's GenerationConfig defaults, used when generation_config.json sets none
DEFAULT_TOP_K = 50
DEFAULT_TOP_P = 1.0
OFFICIAL_SEED = 42


@dataclass
class VLLMOutput:
    """One sample's generation with everything needed to check it."""

    features: VLLMFeatures
    action: str  # the {action} of the query
    prompt: str  # the full prompt text (with <image>)
    prompt_ids: list[int]  # LLaVA token list (IMAGE_TOKEN_INDEX at the image)
    generated_ids: list[int]  # new tokens, EOS included when generated
    lemmatizer: str  # what lemmatized the action: "nltk-wordnet" | "builtin-morphy" | "none" (EPIC, verbatim)


def _load_tokenizer(folder: Path) -> Any:
    """The tokenizer class named in ``tokenizer_config.json`` (``LlamaTokenizer`` for LLaVA).

    Not ``AutoTokenizer``: it would parse the LLaVA ``config.json`` (``model_type``
    "llava", original layout) as transformers' unrelated ``LlavaConfig``.
    """
    _compat.ensure_torchvision()
    import transformers

    name = read_json(folder / "tokenizer_config.json").get("tokenizer_class") or "LlamaTokenizer"
    cls = getattr(transformers, name, None) or getattr(transformers, name.removesuffix("Fast"), None)
    if cls is None:
        raise UserError(f"{folder}: unknown tokenizer_class '{name}'")
    try:
        return cls.from_pretrained(str(folder), local_files_only=True)
    except (ImportError, ValueError, OSError) as e:
        hint = ""
        if not (folder / "tokenizer.json").is_file():
            hint = "; the SentencePiece tokenizer.model needs 'pip install sentencepiece' to load"
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise UserError(f"{folder}: cannot load the LLaVA tokenizer ({first}){hint}") from None


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype not in (torch.float16, torch.float32):
        t = t.float()
    return t.detach().cpu().numpy()


class LegoVLLM:
    """LEGO's VLLM: prompt, describe, image and text features.

    Build with :meth:`from_artifacts`; tests and advanced users can build the
    pieces with :func:`build_llava_model` and pass them to the constructor.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        preprocess: ClipPreprocess,
        *,
        variant: str = "ego4d",
        temperature: float = TEMPERATURE,
        top_k: int | None = DEFAULT_TOP_K,
        top_p: float = DEFAULT_TOP_P,
        max_new_tokens: int = MAX_NEW_TOKENS,
        release_slicing: bool = True,
        tiny: bool = False,
        report: LoadReport | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.variant = variant
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.release_slicing = release_slicing
        self.tiny = tiny
        self.report = report
        eos = tokenizer.eos_token_id
        self.eos_token_id = eos if eos is not None else model.config.text_config.eos_token_id
        pad = tokenizer.pad_token_id
        self.pad_token_id = pad if pad is not None else model.config.text_config.pad_token_id

    # -- construction -------------------------------------------------------
    @classmethod
    def from_artifacts(
        cls,
        weights_store: WeightStore,
        variant: Variant = "ego4d",
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **settings: Any,
    ) -> LegoVLLM:
        """Resolve ``lego-vllm-ego4d`` | ``lego-vllm-epic`` | ``llava-llama-2-13b`` plus ``llava-vision-tower``.

        Defaults: CUDA in float16 when available (as released), else CPU in float32.
        """
        if variant not in VARIANT_ARTIFACTS:
            raise UserError(f"unknown LEGO VLLM variant '{variant}'; use one of {', '.join(VARIANT_ARTIFACTS)}")
        name = VARIANT_ARTIFACTS[variant]
        res: Resolved = weights_store.resolve(name)
        vis: Resolved = weights_store.resolve(VISION_ARTIFACT)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if device.type == "cuda" else torch.float32
        llava_dir = res.file(ARTIFACT_SUBDIR[name]) if ARTIFACT_SUBDIR[name] else res.path
        model, report = build_llava_model(
            llava_dir, vis.path, device=device, dtype=dtype,
            attn_implementation=settings.pop("attn_implementation", "eager"),
        )
        gen = {}
        if (llava_dir / "generation_config.json").is_file():
            gen = read_json(llava_dir / "generation_config.json")
        settings.setdefault("top_k", gen.get("top_k", DEFAULT_TOP_K))
        settings.setdefault("top_p", gen.get("top_p", DEFAULT_TOP_P))
        return cls(
            model,
            _load_tokenizer(llava_dir),
            ClipPreprocess.from_file(vis.file("preprocessor_config.json")),
            variant=variant,
            tiny=res.tiny or vis.tiny,
            report=report,
            **settings,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def model_tag(self) -> str:
        """Feature-folder tag of features computed with this model: ``egobench-<artifact>``, never the
        released dump's tag (:data:`RELEASE_TAGS`); how they were made is in the folder's provenance.json."""
        from .vllm_choice import llava_choice, self_tag

        return self_tag(llava_choice(self.variant))

    def settings(self) -> dict[str, Any]:
        """Everything that changes the features besides weights and inputs (for feature provenance)."""
        from .vllm_prompt import SYSTEM_PROMPT

        cfg = self.model.config
        vis = cfg.vision_config
        return {
            "sampling": {"do_sample": True, "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                         "max_new_tokens": self.max_new_tokens, "seeding": "per-sample"},
            "query": {"template": QUERY, "format": "llava_llama_2 (image first, mm_use_im_start_end false)",
                      "system": SYSTEM_PROMPT, "release_slicing": self.release_slicing},
            "sizes": {"hidden": int(cfg.text_config.hidden_size),
                      "image_tokens": int((vis.image_size // vis.patch_size) ** 2),
                      "image_side": int(self.preprocess.crop[0])},
            "class": "LlavaForConditionalGeneration (converted from the original LLaVA layout)",
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": self.device.type,
        }

    # -- prompt ---------------------------------------------------------------
    def action(self, action: str, dataset: str) -> str:
        return action_phrase(action, dataset, release_slicing=self.release_slicing)

    def prompt(self, action: str, dataset: str) -> str:
        """The full llava_llama_2 prompt (with ``<image>``) for a label of ``dataset``."""
        return llava_llama_2_prompt(QUERY.format(self.action(action, dataset)))

    def prompt_ids(self, prompt: str) -> list[int]:
        return tokenize_with_image(prompt, self.tokenizer)

    # -- tensors --------------------------------------------------------------
    def pixel_values(self, image: Any) -> torch.Tensor:
        """(1, 3, H, W) in the model's dtype and device; ``image`` is a PIL image or a path."""
        if isinstance(image, (str, os.PathLike)):
            from egobench.images import open_rgb

            # egobench's one reader (pixel limit, one-line errors); it applies EXIF orientation,
            # which the release's Image.open(...).convert("RGB") did not: video frames carry none
            image = open_rgb(image)
        return self.preprocess(image).unsqueeze(0).to(self.device, self.dtype)

    @torch.no_grad()
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Projector output, (image tokens, hidden): CLIP layer ``vision_feature_layer``, CLS dropped, projected."""
        cfg = self.model.config
        out = self.model.model.get_image_features(
            pixel_values=pixel_values,
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
            return_dict=True,
        )
        return out.pooler_output[0]  # one image: (tokens, hidden)

    @torch.no_grad()
    def inputs_embeds(self, prompt_ids: Sequence[int], image_features: torch.Tensor) -> torch.Tensor:
        """(1, L, hidden): text embeddings with ``image_features`` spliced in at each image placeholder."""
        embed = self.model.get_input_embeddings()
        pieces: list[torch.Tensor] = []
        run: list[int] = []

        def flush() -> None:
            if run:
                pieces.append(embed(torch.tensor(run, device=self.device)))
                run.clear()

        for tok in prompt_ids:
            if tok == IMAGE_TOKEN_INDEX:
                flush()
                pieces.append(image_features.to(self.dtype))
            else:
                run.append(int(tok))
        flush()
        return torch.cat(pieces, dim=0).unsqueeze(0)

    # -- generation -----------------------------------------------------------
    @torch.no_grad()
    def _generate(self, embeds: torch.Tensor) -> tuple[list[int], torch.Tensor]:
        out = self.model.generate(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
            do_sample=True,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            use_cache=True,
            output_hidden_states=True,
            return_dict_in_generate=True,
        )
        ids = [int(t) for t in out.sequences[0]]
        if len(ids) != len(out.hidden_states):
            raise RuntimeError(f"generate returned {len(ids)} tokens but {len(out.hidden_states)} steps")
        # step w: last layer (post-norm) at the last position fed = the state that produced token w
        text = torch.stack([step[-1][0, -1] for step in out.hidden_states])
        return ids, text

    def decode(self, ids: Sequence[int]) -> str:
        """The release's post-processing: decode (special tokens kept), strip, drop ``</s>``, strip."""
        text = self.tokenizer.decode(list(ids), skip_special_tokens=False).strip()
        return text.replace(STOP_STR, "").strip()

    def generate_one(self, image: Any, action: str, dataset: str) -> VLLMOutput:
        """One sample with the current RNG state (seed it yourself, or use :meth:`describe`)."""
        phrase = self.action(action, dataset)
        prompt = llava_llama_2_prompt(QUERY.format(phrase))
        ids = self.prompt_ids(prompt)
        img = self.image_features(self.pixel_values(image))
        gen, text = self._generate(self.inputs_embeds(ids, img))
        feats = VLLMFeatures(image=_to_numpy(img), text=_to_numpy(text), description=self.decode(gen))
        return VLLMOutput(feats, phrase, prompt, ids, gen, action_lemmatizer(dataset))

    def run(
        self,
        images: Sequence[Any],
        actions: Sequence[str],
        datasets: str | Sequence[str],
        seed: int = OFFICIAL_SEED,
        seeding: Literal["per-sample", "once"] = "per-sample",
    ) -> list[VLLMOutput]:
        """:meth:`describe` with the token ids and prompts kept."""
        if isinstance(datasets, str):
            datasets = [datasets] * len(images)
        if not len(images) == len(actions) == len(datasets):
            raise UserError(f"describe: {len(images)} images, {len(actions)} actions, {len(datasets)} datasets")
        if seeding not in ("per-sample", "once"):
            raise UserError(f"unknown seeding '{seeding}'; use per-sample or once")
        devices = [self.device] if self.device.type == "cuda" else []
        outs = []
        with torch.random.fork_rng(devices=devices):
            if seeding == "once":
                torch.manual_seed(seed)
            for image, action, dataset in zip(images, actions, datasets):
                if seeding == "per-sample":
                    torch.manual_seed(seed)
                outs.append(self.generate_one(image, action, dataset))
        return outs

    def describe(
        self,
        images: Sequence[Any],
        actions: Sequence[str],
        datasets: str | Sequence[str],
        seed: int = OFFICIAL_SEED,
        seeding: Literal["per-sample", "once"] = "per-sample",
    ) -> list[VLLMFeatures]:
        """Enriched description, image features and text features for each (image, action label)."""
        return [o.features for o in self.run(images, actions, datasets, seed, seeding)]

