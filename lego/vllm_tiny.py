"""The tiny zoo's LEGO VLLM stand-ins: LLaVA-Llama-2 and CLIP checkpoints in the released layouts, small and random."""

from __future__ import annotations

from pathlib import Path

import torch

from egobench import _compat
from egobench.io import atomic_write_json, atomic_write_text

from .spm_model import spm_model_proto
from .vllm_artifacts import ARTIFACT_SUBDIR
from .vllm_preprocess import CLIP_MEAN, CLIP_STD
from .vllm_prompt import QUERY, SYSTEM_PROMPT

TINY_IMAGE = 32
TINY_PATCH = 8
TINY_VISION_HIDDEN = 32
TINY_HIDDEN = 64
TINY_LAYERS = 2
TINY_HEADS = 4

_TINY_WORDS = """
the a an and or of to in on with that is are it its this by for from at as be can into onto then their
person hand hands left right finger fingers holds hold take takes open opens close closes drawer door
cup bowl plate knife spoon fork pan pot lid tap water sink table counter cabinet shelf fridge box bag
bottle jar towel cloth phone paper book pen brush paint wood board cut cutting onion tomato food dough
knead stir pour wash wipe put place pick up down out off move turn press push pull lift drop carefully
gently slowly firmly properly grasp grip handle edge top side bottom front back inside outside over
under toward away position motion lightly steady keep use using make sure first next finally while
video frame displayed does how person's what where when which who will would should could not no
you your i am assist assistant helpful language vision visual content user provides understand able
tasks variety natural task
"""


def _tiny_vocab() -> list[str]:
    specials = ["<unk>", "<s>", "</s>"]
    punct = ["[", "]", "[/", "<<", ">>", "<</", "/", "?", ".", ",", "'", "<", ">", "INST", "SYS", "!", ":", ";", "-"]
    words = [w for w in dict.fromkeys(_TINY_WORDS.split() + QUERY.replace("{}", "").split()) if w]
    words += [w.strip(".,?") for w in SYSTEM_PROMPT.split()]
    out = list(dict.fromkeys(specials + punct + sorted(set(words) - set(specials) - set(punct))))
    return out


def _write_tiny_tokenizer(folder: Path) -> int:
    """A WordLevel fast tokenizer (tokenizer.json) + config files + a SentencePiece-format tokenizer.model."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = _tiny_vocab()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    atomic_write_text(folder / "tokenizer.json", tok.to_str())
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<unk>"}
    atomic_write_json(folder / "special_tokens_map.json", specials)
    atomic_write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            **specials,
            "model_max_length": 2048,
            "padding_side": "right",
            "clean_up_tokenization_spaces": False,
        },
    )
    (folder / "tokenizer.model").write_bytes(spm_model_proto(vocab))
    return len(vocab)


def _tiny_tensor(gen: torch.Generator, *shape: int, std: float = 0.02) -> torch.Tensor:
    return torch.randn(*shape, generator=gen) * std


def build_tiny_vision_tower(folder: Path) -> None:
    """Tiny CLIP (full CLIPModel weights, ``vision_model.*`` + ``text_model.*``) in openai/clip-vit-large-patch14's layout."""
    _compat.ensure_torchvision()
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vision = {
        "hidden_size": TINY_VISION_HIDDEN, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
        "image_size": TINY_IMAGE, "patch_size": TINY_PATCH, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        "projection_dim": 16, "num_channels": 3, "model_type": "clip_vision_model",
    }
    text = {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "vocab_size": 64, "max_position_embeddings": 16, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        "projection_dim": 16, "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1, "model_type": "clip_text_model",
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    with torch.random.fork_rng():
        torch.manual_seed(20231206)
        model = CLIPModel(config)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    # the 2022 checkpoint also stores the position_ids buffers
    state["vision_model.embeddings.position_ids"] = torch.arange((TINY_IMAGE // TINY_PATCH) ** 2 + 1).unsqueeze(0)
    state["text_model.embeddings.position_ids"] = torch.arange(16).unsqueeze(0)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    atomic_write_json(
        folder / "config.json",
        {
            "architectures": ["CLIPModel"],
            "model_type": "clip",
            "projection_dim": 16,
            "logit_scale_init_value": 2.6592,
            "text_config": text,
            "vision_config": vision,
            "vision_config_dict": {k: vision[k] for k in ("hidden_size", "num_hidden_layers", "patch_size")},
        },
    )
    atomic_write_json(
        folder / "preprocessor_config.json",
        {
            "crop_size": TINY_IMAGE,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "CLIPFeatureExtractor",
            "image_mean": list(CLIP_MEAN),
            "image_std": list(CLIP_STD),
            "resample": 3,
            "size": TINY_IMAGE,
        },
    )


def _build_tiny_llava(folder: Path, seed: int) -> None:
    """Tiny LLaVA-Llama-2 checkpoint in the original layout (3 .bin shards + index, config, tokenizer files)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = _write_tiny_tokenizer(folder)
    h, inter, heads = TINY_HIDDEN, 128, TINY_HEADS
    gen = torch.Generator().manual_seed(seed)
    half = torch.float16
    state: dict[str, torch.Tensor] = {"model.embed_tokens.weight": _tiny_tensor(gen, vocab_size, h, std=1.0).to(half)}
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, h // heads, 2, dtype=torch.float32) / (h // heads)))
    for i in range(TINY_LAYERS):
        p = f"model.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            state[p + f"self_attn.{name}.weight"] = _tiny_tensor(gen, h, h, std=0.1).to(half)
        state[p + "self_attn.rotary_emb.inv_freq"] = inv_freq.clone()  # 4.31 saved it; dropped on conversion
        state[p + "mlp.gate_proj.weight"] = _tiny_tensor(gen, inter, h, std=0.1).to(half)
        state[p + "mlp.up_proj.weight"] = _tiny_tensor(gen, inter, h, std=0.1).to(half)
        state[p + "mlp.down_proj.weight"] = _tiny_tensor(gen, h, inter, std=0.1).to(half)
        state[p + "input_layernorm.weight"] = (1 + _tiny_tensor(gen, h, std=0.1)).to(half)
        state[p + "post_attention_layernorm.weight"] = (1 + _tiny_tensor(gen, h, std=0.1)).to(half)
    state["model.norm.weight"] = (1 + _tiny_tensor(gen, h, std=0.1)).to(half)
    state["model.mm_projector.weight"] = _tiny_tensor(gen, h, TINY_VISION_HIDDEN, std=0.2).to(half)
    state["model.mm_projector.bias"] = _tiny_tensor(gen, h, std=0.2).to(half)
    state["lm_head.weight"] = _tiny_tensor(gen, vocab_size, h, std=0.5).to(half)
    keys = list(state)
    shards = [keys[: len(keys) // 3], keys[len(keys) // 3 : 2 * len(keys) // 3], keys[2 * len(keys) // 3 :]]
    weight_map = {}
    for n, shard in enumerate(shards, 1):
        name = f"pytorch_model-{n:05d}-of-00003.bin"
        torch.save({k: state[k] for k in shard}, folder / name)
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    atomic_write_json(folder / "pytorch_model.bin.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})
    atomic_write_json(
        folder / "config.json",
        {
            "_name_or_path": "egobench-tiny-llava-llama-2",
            "architectures": ["LlavaLlamaForCausalLM"],
            "model_type": "llava",
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 0,
            "hidden_act": "silu",
            "hidden_size": h,
            "initializer_range": 0.02,
            "intermediate_size": inter,
            "max_position_embeddings": 4096,
            "num_attention_heads": heads,
            "num_hidden_layers": TINY_LAYERS,
            "num_key_value_heads": heads,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-5,
            "rope_scaling": None,
            "tie_word_embeddings": False,
            "torch_dtype": "float16",
            "transformers_version": "4.31.0",
            "use_cache": True,
            "vocab_size": vocab_size,
            "freeze_mm_mlp_adapter": False,
            "mm_hidden_size": TINY_VISION_HIDDEN,
            "mm_use_im_patch_token": False,
            "mm_use_im_start_end": False,
            "mm_vision_select_layer": -2,
            "mm_vision_tower": "openai/clip-vit-large-patch14",
            "tune_mm_mlp_adapter": False,
            "use_mm_proj": True,
        },
    )
    # the 132-byte generation_config.json of the lightning-preview checkpoint (no sampling options)
    atomic_write_json(
        folder / "generation_config.json",
        {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "transformers_version": "4.31.0"},
    )


def build_tiny_lego_vllm_ego4d(folder: Path) -> None:
    _build_tiny_llava(Path(folder) / ARTIFACT_SUBDIR["lego-vllm-ego4d"], seed=4)


def build_tiny_lego_vllm_epic(folder: Path) -> None:
    _build_tiny_llava(Path(folder) / ARTIFACT_SUBDIR["lego-vllm-epic"], seed=5)


def build_tiny_llava_llama_2(folder: Path) -> None:
    _build_tiny_llava(Path(folder), seed=2)
