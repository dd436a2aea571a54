"""The built-in metrics' typed settings, importable without torch.

A protocol's hash covers every metric's settings resolved through these classes
(defaults included), and ``egobench protocols`` lists hashes without importing
the metric modules; each metric class uses the class named here
(tests/test_protocol_registry.py checks they agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError

#: all_metrics_in_one.py: seed_everything(42) before any metric
RELEASED_SEED = 42

#: the Inception input stage: pytorch-fid = float bilinear 299 + 2x-1 (released code);
#: torch-fidelity = uint8 into torch-fidelity's extractor (TF1-style resize);
#: clean = clean-fid's "clean" mode (PIL bicubic per channel in float, no quantisation)
InputStage = Literal["pytorch-fid", "torch-fidelity", "clean"]


@dataclass(frozen=True)
class PSNRSettings:
    data_range: float = 1.0
    # how the generated image is brought to the target's size when they differ
    resize_filter: Literal["bilinear", "bicubic"] = "bilinear"
    antialias: bool = False


@dataclass(frozen=True)
class LPIPSSettings:
    net: Literal["squeeze", "alex", "vgg"] = "squeeze"
    input_range: Literal["unit", "signed"] = "signed"
    resize_filter: Literal["bilinear", "bicubic"] = "bilinear"
    antialias: bool = False


@dataclass(frozen=True)
class CLIPSettings:
    #: open_clip architecture name; its OpenAI weights come from the registry
    model: Literal["ViT-L-14"] = "ViT-L-14"
    #: squash = straight to 224 x 224 (released code); shortside-crop = short side
    #: to 224 then centre crop (CLIP's own preprocessing)
    resize: Literal["squash", "shortside-crop"] = "squash"
    #: antialias of the bicubic resize; the released code uses F.interpolate's default (False)
    antialias: bool = False


@dataclass(frozen=True)
class FIDSettings:
    #: the input stage (:data:`InputStage`)
    resize: InputStage = "pytorch-fid"
    #: tr sqrtm(S_t S_g): sqrtm = scipy as pytorch-fid; svd = exact, from the features
    trace_sqrt: Literal["sqrtm", "svd"] = "sqrtm"


@dataclass(frozen=True)
class KIDSettings:
    #: the Inception input stage, as FID's ``resize`` (pytorch-fid, torch-fidelity or clean)
    resize: InputStage = "torch-fidelity"
    #: torch-fidelity's kid_subsets / kid_subset_size / kid_kernel_poly_* / rng_seed defaults
    subsets: int = 100
    subset_size: int = 1000
    degree: int = 3
    gamma: float | None = None  # None: 1 / feature dimension
    coef0: float = 1.0
    seed: int = 2020

    def __post_init__(self) -> None:
        if self.subsets < 1 or self.subset_size < 2 or self.degree < 1:
            raise ConfigError(f"KID settings: need subsets >= 1, subset_size >= 2 and degree >= 1, got "
                              f"{self.subsets}, {self.subset_size} and {self.degree}")


@dataclass(frozen=True)
class BLIPSettings:
    model: Literal["base", "large"] = "base"
    weights_format: Literal["hf", "original"] = "hf"
    text_encoder: Literal["egovlp", "clip"] = "egovlp"
    reference: Literal["description", "action"] = "description"
    batch_size: int = 30
    beam_search: Literal["released", "transformers"] = "released"
    # eval: the captioner in eval mode (deterministic); released: in training mode as the released
    #   script runs it (dropout, BLIP-L drop path), batches of batch_size in split order drawing from
    #   the device generator seeded with `seed` per captioning pass, leading space kept
    mode: Literal["eval", "released"] = "eval"
    seed: int = RELEASED_SEED
    # released: repeat the captioning pass with seeds seed, seed + 1, ...; score = mean over draws
    draws: int = 1


@dataclass(frozen=True)
class EgoVLPSettings:
    #: clip length for Ego4D samples (egovlp.pth was trained with 4)
    frames_ego4d: int = 4
    #: clip length for EPIC-KITCHENS samples (epic_mir_plus.pth was trained with 16)
    frames_epic: int = 16
    #: antialias the bilinear resizes (torchvision 0.12, the released env, did not)
    antialias: bool = False

    def __post_init__(self) -> None:
        for name in ("frames_ego4d", "frames_epic"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class EgoVLPPlusSettings(EgoVLPSettings):
    #: resize the generated image to the input frame's size when they differ
    resize_generated_to_input: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("frames_ego4d", "frames_epic"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{name}: EgoVLP+ needs at least 2 frames (input + image), got {getattr(self, name)}")


# action faithfulness (egobench-v2; egobench/metrics/action.py says what they compute)
@dataclass(frozen=True)
class ActionAccSettings:
    #: what is recognised: the action label, its verb or its noun
    vocabulary: Literal["action", "verb", "noun"] = "action"
    #: a sample counts when its label is among the k best
    k: int = 1
    #: the EgoVLP clip of the generated frame, as the egovlp metric builds it
    frames_ego4d: int = 4
    frames_epic: int = 16
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k: must be at least 1, got {self.k}")
        for name in ("frames_ego4d", "frames_epic"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class ActionSimSettings:
    #: exemplars per side (same verb, other verbs)
    k: int = 5
    #: the CLIP image encoder and its preprocessing (as the clip metric's settings)
    model: Literal["ViT-L-14"] = "ViT-L-14"
    resize: Literal["squash", "shortside-crop"] = "squash"
    antialias: bool = True

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ConfigError(f"k: must be at least 1, got {self.k}")


@dataclass(frozen=True)
class ActionSensitivitySettings:
    #: how close each image's EgoVLP clip embedding is to the ground truth's: cosine, or minus the
    #: euclidean distance
    distance: Literal["cosine", "euclidean"] = "cosine"
    frames_ego4d: int = 4
    frames_epic: int = 16
    antialias: bool = True


# the VLM judge (egobench/metrics/vlm_judge.py says what it asks and how answers are scored)
@dataclass(frozen=True)
class VLMJudgeSettings:
    #: the judge (each name is one weights artifact)
    model: Literal["qwen2-vl-2b-instruct"] = "qwen2-vl-2b-instruct"
    #: the version of the question texts (vlm_judge.PROMPTS); new wording = new version
    prompt_version: Literal["1"] = "1"
    #: greedy decoding stops after this many new tokens (an answer cut short is a parse failure)
    max_new_tokens: int = 160
    #: samples per generate call (left padding; changes answers by float rounding at most)
    batch_size: int = 4
    #: both frames are shrunk (PIL bicubic, aspect kept) so their longer side is at most this
    max_image_side: int = 448

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.batch_size < 1 or self.max_image_side < 28:
            raise ConfigError(f"vlm-judge settings: need max_new_tokens >= 1, batch_size >= 1 and max_image_side "
                              f">= 28, got {self.max_new_tokens}, {self.batch_size} and {self.max_image_side}")


#: registered metric name -> its settings class (a plugin metric's come from its own class)
BUILTIN_SETTINGS: dict[str, type] = {
    "psnr": PSNRSettings,
    "lpips": LPIPSSettings,
    "clip": CLIPSettings,
    "fid": FIDSettings,
    "kid": KIDSettings,
    "blip": BLIPSettings,
    "egovlp": EgoVLPSettings,
    "egovlp-plus": EgoVLPPlusSettings,
    "action-acc": ActionAccSettings,
    "action-sim": ActionSimSettings,
    "action-sensitivity": ActionSensitivitySettings,
    "vlm-judge": VLMJudgeSettings,
}
