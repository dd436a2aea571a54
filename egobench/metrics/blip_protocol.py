"""The released BLIP caption protocol's constants and the BLIP weight artifacts (registered on import)."""

from __future__ import annotations

from ..weights import Artifact, register_artifact
from .settings import RELEASED_SEED  # noqa: F401  (all_metrics_in_one.py: seed_everything(42))

# --- the released protocol -------------------------------------------------
PROMPT = "a picture of"
IMAGE_SIZE = 384
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NUM_BEAMS = 3
MAX_LENGTH = 20
MIN_LENGTH = 5
REPETITION_PENALTY = 1.0  # BLIP_Decoder.generate's default for beam search
LENGTH_PENALTY = 1.0  # transformers' default (med_config.json sets none)
BOS_TOKEN = "[DEC]"  # BLIP's init_tokenizer(): bos_token
ENC_TOKEN = "[ENC]"  # ... and one additional special token
VISION_LN_EPS = 1e-6  # BLIP vit.py: partial(nn.LayerNorm, eps=1e-6)
TEXT_LN_EPS = 1e-12  # med_config.json
HEAD_DIM = 64  # ViT-B 768/12, ViT-L 1024/16, BERT-base 768/12 (med_config)
# the released captioner runs in training mode (compute_blip_caption never calls .eval())
RELEASED_HIDDEN_DROPOUT = 0.1  # med_config.json hidden_dropout_prob
RELEASED_ATTENTION_DROPOUT = 0.1  # med_config.json attention_probs_dropout_prob
RELEASED_DROP_PATH = {"base": 0.0, "large": 0.1}  # blip.py create_vit: drop_path_rate of ViT-B / ViT-L

# --- artifacts ----------------------------------------------------------------
HF_TOKENIZER_FILES = ("special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt")
_HF_REPOS = {"base": "Salesforce/blip-image-captioning-base", "large": "Salesforce/blip-image-captioning-large"}
# as on the hubs' main branches: the base repo has only pytorch_model.bin
# (its safetensors variant sits in unmerged PRs); the large repo has model.safetensors
HF_WEIGHTS = {"base": "pytorch_model.bin", "large": "model.safetensors"}
ORIGINAL_FILES = {"base": "model_base_caption_capfilt_large.pth", "large": "model_large_caption.pth"}
TOKENIZER_ARTIFACT = "blip-bert-tokenizer"


def hf_artifact(model: str) -> str:
    return f"blip-{model}-caption"


def original_artifact(model: str) -> str:
    return f"blip-{model}-caption-original"


def hf_files(model: str) -> tuple[str, ...]:
    return ("config.json", HF_WEIGHTS[model], "preprocessor_config.json", *HF_TOKENIZER_FILES)


for _m, _vit in (("base", "ViT-B/16"), ("large", "ViT-L/16")):
    register_artifact(
        Artifact(
            name=hf_artifact(_m),
            description=f"BLIP caption model ({_vit}, 384px), Hugging Face transformers port, with its tokenizer",
            files=hf_files(_m),
            license="BSD-3-Clause",
            hf_repo=_HF_REPOS[_m],
            tiny=f"egobench.metrics.blip_tiny:build_tiny_{_m}_hf",
            full_arch=f"egobench.metrics.blip_tiny:build_full_arch_{_m}_hf",
        )
    )
    register_artifact(
        Artifact(
            name=original_artifact(_m),
            description=f"BLIP caption model ({_vit}, 384px), original BLIP checkpoint used by the LEGO "
            "release (needs 'blip-bert-tokenizer')",
            files=(ORIGINAL_FILES[_m],),
            license="BSD-3-Clause",
            hf_repo="bolinlai/LEGO-Metrics",
            tiny=f"egobench.metrics.blip_tiny:build_tiny_{_m}_original",
            full_arch=f"egobench.metrics.blip_tiny:build_full_arch_{_m}_original",
        )
    )
register_artifact(
    Artifact(
        name=TOKENIZER_ARTIFACT,
        description="bert-base-uncased WordPiece vocabulary: the tokenizer of the original BLIP checkpoints "
        "(BLIP adds [DEC] and [ENC] to it)",
        files=("vocab.txt",),
        license="Apache-2.0",
        hf_repo="google-bert/bert-base-uncased",
        tiny="egobench.metrics.blip_tiny:build_tiny_bert_tokenizer",
        full_arch="egobench.metrics.blip_tiny:build_full_arch_bert_tokenizer",
    )
)
