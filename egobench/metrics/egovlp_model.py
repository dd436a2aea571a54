"""EgoVLP (FrozenInTime): SpaceTimeTransformer video tower + DistilBERT text tower.

Hand-written: no library provides EgoVLP's video tower (a ViT with the
"frozen-in-time" divided space-time attention). The text tower is transformers'
``DistilBertModel``. Parameter names match the official checkpoints
(``egovlp.pth``, ``epic_mir_plus.pth``) key for key, so they load strictly.

What the tower computes (read from the released ``video_transformer.py``):

* patches: a Conv2d per frame, flattened frame-major: token ``1 + f * N + n``;
* positions: spatial ``pos_embed[1:]`` tiled over frames plus
  ``temporal_embed[f]`` for every patch of frame ``f``; the CLS token gets
  ``pos_embed[0]`` only; with fewer frames than the model's, entries
  ``0..F-1`` are used;
* block: ``t = timeattn(norm3(x))`` where every patch attends over its own
  position in all frames; ``s = attn(norm1(x + t))`` where every patch attends
  over the patches of its own frame; ``x = x + s`` (the time output only feeds
  the space attention's input); ``x = x + mlp(norm2(x))``. In both attentions
  the CLS query attends to every token (including itself) and the CLS
  key/value is prepended to every group; queries are scaled by
  ``head_dim ** -0.5``; LayerNorm eps 1e-6; qkv with bias; exact GELU;
* output: ``norm(x)[:, 0]`` -> ``vid_proj`` (Linear 768 -> 256).
  Text: DistilBERT ``last_hidden_state[:, 0]`` -> ``txt_proj`` (ReLU, Linear).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from .. import _compat
from ..errors import DataError

#: DistilBERT's position-id buffer (0..L-1). Not in EgoVLP's files as far as we
#: know (trained with transformers ~4.6, before the buffer existed; non-persistent
#: since), but accepted and checked when a re-saved checkpoint carries it.
POSITION_IDS_KEY = "text_model.embeddings.position_ids"


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.matmul(q, k.transpose(-1, -2)).softmax(dim=-1).matmul(v)


class DividedAttention(nn.Module):
    """Multi-head attention over groups of patch tokens, with a global CLS.

    ``over="space"``: one group per frame (its N patches); ``over="time"``: one
    group per patch position (its F frames). The CLS key/value joins every
    group; the CLS query attends to all 1 + F * N tokens.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, frames: int, patches: int, over: Literal["space", "time"]) -> torch.Tensor:
        b, t, dim = x.shape
        h = self.num_heads
        d = dim // h
        qkv = self.qkv(x).reshape(b, t, 3, h, d).permute(2, 0, 3, 1, 4)  # (3, B, h, T, d)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]

        cls_out = _attend(q[:, :, :1], k, v)  # (B, h, 1, d)

        def groups(z: torch.Tensor) -> torch.Tensor:  # (B, h, F*N, d) -> (B, h, G, L, d)
            z = z.reshape(b, h, frames, patches, d)
            return z if over == "space" else z.transpose(2, 3)

        qg, kg, vg = groups(q[:, :, 1:]), groups(k[:, :, 1:]), groups(v[:, :, 1:])
        n_groups = qg.shape[2]
        cls_k = k[:, :, :1].unsqueeze(2).expand(b, h, n_groups, 1, d)
        cls_v = v[:, :, :1].unsqueeze(2).expand(b, h, n_groups, 1, d)
        out = _attend(qg, torch.cat([cls_k, kg], dim=3), torch.cat([cls_v, vg], dim=3))
        if over == "time":
            out = out.transpose(2, 3)
        out = torch.cat([cls_out, out.reshape(b, h, frames * patches, d)], dim=2)
        return self.proj(out.transpose(1, 2).reshape(b, t, dim))


class SpaceTimeBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool = True, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = DividedAttention(dim, num_heads, qkv_bias)
        self.timeattn = DividedAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden)
        self.norm3 = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, frames: int, patches: int) -> torch.Tensor:
        time_residual = x + self.timeattn(self.norm3(x), frames, patches, "time")
        x = x + self.attn(self.norm1(time_residual), frames, patches, "space")
        return x + self.mlp(self.norm2(x))


class SpaceTimeTransformer(nn.Module):
    """The EgoVLP video tower; ``forward`` maps (B, F, 3, H, W) to the CLS feature (B, D)."""

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        patch_size: int = 16,
        img_size: int = 224,
        num_frames: int = 4,
        mlp_hidden: int | None = None,
        in_chans: int = 3,
        qkv_bias: bool = True,
        eps: float = 1e-6,
    ):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"image size {img_size} is not a multiple of the patch size {patch_size}")
        self.embed_dim = embed_dim
        self.img_size = img_size
        self.num_frames = num_frames
        self.patches_per_frame = (img_size // patch_size) ** 2
        mlp_hidden = mlp_hidden or 4 * embed_dim
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patches_per_frame + 1, embed_dim))
        self.temporal_embed = nn.Parameter(torch.zeros(1, num_frames, embed_dim))
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(embed_dim, num_heads, mlp_hidden, qkv_bias, eps) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=eps)
        if not self.cls_token.is_meta:
            for p in (self.cls_token, self.pos_embed, self.temporal_embed):
                nn.init.trunc_normal_(p, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected a clip batch (B, F, C, H, W), got shape {tuple(x.shape)}")
        b, f, c, hgt, wid = x.shape
        if f > self.num_frames:
            raise ValueError(f"clip has {f} frames; this model takes at most {self.num_frames}")
        if (hgt, wid) != (self.img_size, self.img_size):
            raise ValueError(f"frames must be {self.img_size}x{self.img_size}, got {hgt}x{wid}")
        n = self.patches_per_frame
        x = self.patch_embed.proj(x.reshape(b * f, c, hgt, wid))  # (B*F, D, g, g)
        x = x.flatten(2).transpose(1, 2).reshape(b, f * n, self.embed_dim)
        pos = self.pos_embed[:, 1:].repeat(1, f, 1) + self.temporal_embed[:, :f].repeat_interleave(n, dim=1)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        x = torch.cat([cls, x + pos], dim=1)
        for blk in self.blocks:
            x = blk(x, f, n)
        return self.norm(x)[:, 0]


@dataclass(frozen=True)
class EgoVLPDims:
    """Every size an EgoVLP checkpoint fixes (read from its tensor shapes)."""

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    patch_size: int = 16
    img_size: int = 224
    num_frames: int = 4
    mlp_hidden: int = 3072
    in_chans: int = 3
    qkv_bias: bool = True
    proj_dim: int = 256
    text_vocab: int = 30522
    text_dim: int = 768
    text_layers: int = 6
    text_heads: int = 12
    text_hidden: int = 3072
    text_max_positions: int = 512


def distilbert_config(dims: EgoVLPDims, extra: dict[str, Any] | None = None):
    """The ``DistilBertConfig`` of the text tower (eager attention, like transformers 4.19)."""
    _compat.ensure_torchvision()  # transformers' model imports pull torchvision in
    from transformers import DistilBertConfig

    kwargs: dict[str, Any] = {"activation": "gelu", "sinusoidal_pos_embds": False, "pad_token_id": 0}
    kwargs.update({k: v for k, v in (extra or {}).items() if k in ("activation", "pad_token_id")})
    return DistilBertConfig(
        vocab_size=dims.text_vocab,
        dim=dims.text_dim,
        n_layers=dims.text_layers,
        n_heads=dims.text_heads,
        hidden_dim=dims.text_hidden,
        max_position_embeddings=dims.text_max_positions,
        attn_implementation="eager",
        **kwargs,
    )


class EgoVLP(nn.Module):
    """FrozenInTime with ``projection='minimal'``: both towers and their projections."""

    def __init__(self, dims: EgoVLPDims | None = None, text_config_extra: dict[str, Any] | None = None):
        super().__init__()
        _compat.ensure_torchvision()  # transformers' model imports pull torchvision in
        from transformers import DistilBertModel

        dims = dims or EgoVLPDims()
        self.dims = dims
        # registration order follows the official model (text first)
        self.text_model = DistilBertModel(distilbert_config(dims, text_config_extra))
        self.video_model = SpaceTimeTransformer(
            embed_dim=dims.embed_dim,
            depth=dims.depth,
            num_heads=dims.num_heads,
            patch_size=dims.patch_size,
            img_size=dims.img_size,
            num_frames=dims.num_frames,
            mlp_hidden=dims.mlp_hidden,
            in_chans=dims.in_chans,
            qkv_bias=dims.qkv_bias,
        )
        self.txt_proj = nn.Sequential(nn.ReLU(), nn.Linear(dims.text_dim, dims.proj_dim))
        self.vid_proj = nn.Sequential(nn.Linear(dims.embed_dim, dims.proj_dim))

    def embed_video(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, H, W) normalized clips -> (B, proj_dim)."""
        return self.vid_proj(self.video_model(x))

    def embed_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids (B, L) -> (B, proj_dim): DistilBERT [CLS] -> txt_proj."""
        out = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return self.txt_proj(out.last_hidden_state[:, 0])


def cosine_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise cosine of (B, D) tensors; rows normalized with ``max(norm, eps)`` as EgoVLP's ``sim_matrix``."""
    a = a / a.norm(dim=1, keepdim=True).clamp_min(eps)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(eps)
    return (a * b).sum(dim=1)


# ---------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------


def _need(sd: dict[str, torch.Tensor], key: str, where: str) -> torch.Tensor:
    if key not in sd:
        raise DataError(f"{where}: not an EgoVLP checkpoint: missing weight {key!r}")
    return sd[key]


def _count(sd: dict[str, torch.Tensor], prefix: str, suffix: str) -> int:
    n = 0
    while f"{prefix}{n}{suffix}" in sd:
        n += 1
    return n


def arch_params(config: Any) -> dict[str, Any]:
    """``config['arch']['args']`` of a pickled EgoVLP ConfigParser (a StandIn) or a dict; {} if absent."""
    cfg = getattr(config, "state", config)
    if isinstance(cfg, dict):
        cfg = cfg.get("_config", cfg)
    try:
        args = cfg["arch"]["args"]
    except (KeyError, TypeError):
        return {}
    return dict(args) if isinstance(args, dict) else {}


_ARCH_HEADS = {"base_patch16_224": 12}


def dims_from_state_dict(
    sd: dict[str, torch.Tensor], config: Any = None, where: str = "checkpoint"
) -> EgoVLPDims:
    """Read every size from the tensor shapes; heads from the config, else dim // 64."""
    embed = int(_need(sd, "video_model.cls_token", where).shape[-1])
    proj_w = _need(sd, "video_model.patch_embed.proj.weight", where)
    patch = int(proj_w.shape[-1])
    n_patches = int(_need(sd, "video_model.pos_embed", where).shape[1]) - 1
    grid = math.isqrt(n_patches)
    if grid * grid != n_patches:
        raise DataError(f"{where}: video_model.pos_embed holds {n_patches} patches, not a square grid")
    word = _need(sd, "text_model.embeddings.word_embeddings.weight", where)
    arch = arch_params(config)
    video_params = arch.get("video_params") or {}
    text_params = arch.get("text_params") or {}
    projection = arch.get("projection", "minimal")
    if projection != "minimal":
        raise DataError(f"{where}: projection {projection!r} is not supported (EgoVLP uses 'minimal')")
    heads = video_params.get("num_heads") or _ARCH_HEADS.get(video_params.get("arch_config", "")) or embed // 64
    text_dim = int(word.shape[1])
    text_heads = text_params.get("num_heads") or max(text_dim // 64, 1)
    return EgoVLPDims(
        embed_dim=embed,
        depth=_count(sd, "video_model.blocks.", ".norm1.weight"),
        num_heads=int(heads),
        patch_size=patch,
        img_size=grid * patch,
        num_frames=int(_need(sd, "video_model.temporal_embed", where).shape[1]),
        mlp_hidden=int(_need(sd, "video_model.blocks.0.mlp.fc1.weight", where).shape[0]),
        in_chans=int(proj_w.shape[1]),
        qkv_bias="video_model.blocks.0.attn.qkv.bias" in sd,
        proj_dim=int(_need(sd, "vid_proj.0.weight", where).shape[0]),
        text_vocab=int(word.shape[0]),
        text_dim=text_dim,
        text_layers=_count(sd, "text_model.transformer.layer.", ".attention.q_lin.weight"),
        text_heads=int(text_heads),
        text_hidden=int(_need(sd, "text_model.transformer.layer.0.ffn.lin1.weight", where).shape[0]),
        text_max_positions=int(_need(sd, "text_model.embeddings.position_embeddings.weight", where).shape[0]),
    )


def official_state_dict(sd: dict[str, torch.Tensor], where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Undo DataParallel's ``module.`` prefix (as the released loader does)."""
    keys = list(sd)
    prefixed = [k.startswith("module.") for k in keys]
    if any(prefixed) and not all(prefixed):
        raise DataError(f"{where}: state dict mixes 'module.'-prefixed and plain keys")
    if keys and all(prefixed):
        return OrderedDict((k[len("module."):], v) for k, v in sd.items())
    return OrderedDict(sd)


def _fit_frames(sd: dict[str, torch.Tensor], num_frames: int | None) -> None:
    """The released loader's ``_inflate_positional_embeds`` with ``load_temporal_fix='zeros'``."""
    key = "video_model.temporal_embed"
    if num_frames is None or key not in sd:
        return
    te = sd[key]
    if num_frames < te.shape[1]:
        sd[key] = te[:, :num_frames].clone()
    elif num_frames > te.shape[1]:
        new = torch.zeros(te.shape[0], num_frames, te.shape[2], dtype=te.dtype)
        new[:, : te.shape[1]] = te
        sd[key] = new


def egovlp_from_checkpoint(
    ckpt: dict[str, Any], *, num_frames: int | None = None, where: str = "checkpoint"
) -> EgoVLP:
    """Build an eval-mode :class:`EgoVLP` from an official checkpoint dict and load it strictly.

    ``num_frames`` resizes ``temporal_embed`` like the released loader
    (truncate, or zero-fill extra frames); None keeps the checkpoint's.
    """
    if "state_dict" not in ckpt:
        raise DataError(f"{where}: not an EgoVLP checkpoint (no 'state_dict'; keys: {sorted(map(str, ckpt))[:8]})")
    sd = official_state_dict(ckpt["state_dict"], where)
    if POSITION_IDS_KEY in sd:  # a buffer older transformers saved; it must be 0..L-1
        pos = sd.pop(POSITION_IDS_KEY)
        if not torch.equal(pos.reshape(-1).long(), torch.arange(pos.numel())):
            raise DataError(f"{where}: {POSITION_IDS_KEY} is not 0..{pos.numel() - 1}")
    _fit_frames(sd, num_frames)
    dims = dims_from_state_dict(sd, ckpt.get("config"), where)
    with torch.device("meta"):  # no random init, no second copy of the weights
        model = EgoVLP(dims)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise DataError(f"{where}: weights do not match EgoVLP {asdict(dims)}: {' '.join(first[:3])[:600]}") from e
    # non-persistent buffers are not in the state dict: rebuild them
    emb = model.text_model.embeddings
    if isinstance(getattr(emb, "position_ids", None), torch.Tensor):
        emb.register_buffer("position_ids", torch.arange(dims.text_max_positions).unsqueeze(0), persistent=False)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"EgoVLP: tensors left unset after loading: {left[:5]}")
    return model.float().eval().requires_grad_(False)


def load_egovlp(
    path: str | os.PathLike, *, num_frames: int | None = None, device: str | torch.device = "cpu"
) -> EgoVLP:
    """Load ``egovlp.pth`` / ``epic_mir_plus.pth`` (or a tiny stand-in) through the restricted unpickler."""
    from ..checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    return egovlp_from_checkpoint(ckpt, num_frames=num_frames, where=str(path)).to(device)


def to_official_checkpoint(
    model: EgoVLP, config: Any, epoch: int = 0, *, with_position_ids: bool = False, **extra: Any
) -> dict[str, Any]:
    """The official file layout: ``module.``-prefixed weights, the pickled config,
    ``epoch`` and whatever else is given (``with_position_ids`` adds the DistilBERT buffer)."""
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in model.state_dict().items():
        if with_position_ids and k == "text_model.embeddings.word_embeddings.weight":
            sd[f"module.{POSITION_IDS_KEY}"] = torch.arange(model.dims.text_max_positions).unsqueeze(0)
        sd[f"module.{k}"] = v.detach().clone().contiguous()
    return {"arch": "FrozenInTime", "epoch": epoch, "state_dict": sd, "config": config, **extra}
