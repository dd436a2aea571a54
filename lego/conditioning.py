"""LEGO's VLLM conditioning: VLLM features -> extra cross-attention tokens.

Written by hand after the released ``LatentDiffusion`` (``stable_diffusion/ldm/
models/diffusion/ddpm_egogen.py``), with the same submodule names so the
released checkpoint's ``projection_img.*``, ``projection_txt.*`` and
``self_attn_mix.*`` keys load unchanged:

- ``projection_img = Linear(5120, 768)`` on the 256 VLLM image tokens;
- ``projection_txt = Linear(5120, 768)`` on the VLLM text tokens (truncated or
  zero-padded to 77 *before* the projection, as ``EgoGenDataset`` does; no
  mask), then ``self_attn_mix = TransformerEncoder(TransformerEncoderLayer(768,
  8 heads, batch_first, norm_first), 2 layers)`` with PyTorch's defaults
  (FFN 2048, dropout 0.1, ReLU). The self-attention mixes the text tokens only;
  the image tokens are projected and used as they are.

The cross-attention context is ``[CLIP text 77 | image 256 | text 77]`` = 410
tokens for the released model. The ablation variants drop blocks: image only
``[CLIP | image]``, text only ``[CLIP | text]``; descriptions only has no VLLM
module at all (the pipeline takes ``conditioning=None``).

The unconditional branches use *zero tokens* in place of the VLLM blocks (the
released ``ImageEditor`` uses ``zeros_like`` of the projected features, and
training multiplies the projected features by the drop mask), not the
projection of zero features: see ``drop_vllm``.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


class LEGOConditioning(ModelMixin, ConfigMixin):
    """Projects VLLM image/text features and appends them to the CLIP text context.

    Args:
        vllm_hidden: width of the VLLM features (5120 for LLaVA-Llama-2-13B).
        context_dim: the UNet's cross-attention width (768 for SD 1.5).
        image_tokens: VLLM image tokens per sample (256 CLIP ViT-L/14 patches).
        text_tokens: VLLM text tokens after truncation / zero-padding (77).
        heads, layers, ffn, dropout: the text self-attention encoder.
        use_image, use_text: which VLLM blocks this model was trained with.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        vllm_hidden: int = 5120,
        context_dim: int = 768,
        image_tokens: int = 256,
        text_tokens: int = 77,
        heads: int = 8,
        layers: int = 2,
        ffn: int = 2048,
        dropout: float = 0.1,
        use_image: bool = True,
        use_text: bool = True,
    ):
        super().__init__()
        if not (use_image or use_text):
            raise ValueError(
                "LEGOConditioning needs use_image or use_text; for the descriptions-only variant "
                "build the pipeline with conditioning=None"
            )
        for name, value in (("vllm_hidden", vllm_hidden), ("context_dim", context_dim),
                            ("image_tokens", image_tokens), ("text_tokens", text_tokens),
                            ("heads", heads), ("layers", layers), ("ffn", ffn)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LEGOConditioning: {name} must be a positive integer, got {value!r}")
        if context_dim % heads:
            raise ValueError(f"LEGOConditioning: context_dim {context_dim} is not divisible by heads {heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LEGOConditioning: dropout must be in [0, 1), got {dropout!r}")
        if use_image:
            self.projection_img = nn.Linear(vllm_hidden, context_dim)
        if use_text:
            self.projection_txt = nn.Linear(vllm_hidden, context_dim)
            layer = nn.TransformerEncoderLayer(
                d_model=context_dim, nhead=heads, dim_feedforward=ffn, dropout=dropout,
                batch_first=True, norm_first=True,
            )
            # enable_nested_tensor only matters with padding masks (none here) and
            # warns with norm_first; parameters and keys are unchanged.
            self.self_attn_mix = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)

    @property
    def vllm_tokens(self) -> int:
        """Tokens this module appends after the CLIP text tokens."""
        c = self.config
        return c.image_tokens * bool(c.use_image) + c.text_tokens * bool(c.use_text)

    def context_length(self, clip_tokens: int = 77) -> int:
        return clip_tokens + self.vllm_tokens

    def pad_text(self, vllm_text: torch.Tensor) -> torch.Tensor:
        """Truncate or zero-pad VLLM text features (B, T, H) to (B, text_tokens, H)."""
        n = self.config.text_tokens
        t = vllm_text.shape[1]
        if t >= n:
            return vllm_text[:, :n]
        pad = vllm_text.new_zeros(vllm_text.shape[0], n - t, vllm_text.shape[2])
        return torch.cat([vllm_text, pad], dim=1)

    def forward(
        self,
        clip_text_emb: torch.Tensor,
        vllm_image: torch.Tensor | None = None,
        vllm_text: torch.Tensor | None = None,
        drop_vllm: bool = False,
    ) -> torch.Tensor:
        """``[CLIP text | projected image | mixed text]`` on the token axis.

        Args:
            clip_text_emb: (B, 77, context_dim) CLIP last hidden state.
            vllm_image: (B, image_tokens, vllm_hidden), when ``use_image``.
            vllm_text: (B, T, vllm_hidden) for any T, when ``use_text``.
            drop_vllm: zero tokens in place of the VLLM blocks (the unconditional
                branches); features are then not needed.
        """
        c = self.config
        if clip_text_emb.ndim != 3 or clip_text_emb.shape[-1] != c.context_dim:
            raise ValueError(
                f"clip_text_emb must be (batch, tokens, {c.context_dim}), got {tuple(clip_text_emb.shape)}"
            )
        b = clip_text_emb.shape[0]
        blocks = [clip_text_emb]
        if drop_vllm:
            if self.vllm_tokens:
                blocks.append(clip_text_emb.new_zeros(b, self.vllm_tokens, c.context_dim))
            return torch.cat(blocks, dim=1)
        dtype = clip_text_emb.dtype
        if c.use_image:
            self._check_features("vllm_image", vllm_image, b, c.image_tokens)
            img = self.projection_img(vllm_image.to(self.projection_img.weight.dtype))
            blocks.append(img.to(dtype))
        elif vllm_image is not None:
            raise ValueError("vllm_image was given but this LEGOConditioning has use_image=False")
        if c.use_text:
            self._check_features("vllm_text", vllm_text, b, None)
            txt = self.projection_txt(self.pad_text(vllm_text.to(self.projection_txt.weight.dtype)))
            blocks.append(self.self_attn_mix(txt).to(dtype))
        elif vllm_text is not None:
            raise ValueError("vllm_text was given but this LEGOConditioning has use_text=False")
        return torch.cat(blocks, dim=1)

    def _check_features(self, name: str, x: torch.Tensor | None, batch: int, tokens: int | None) -> None:
        h = self.config.vllm_hidden
        if x is None:
            raise ValueError(f"{name} is required: this LEGOConditioning was built with use_{name[5:]}=True")
        want = f"({batch}, {tokens if tokens else 'T'}, {h})"
        if x.ndim != 3 or x.shape[0] != batch or x.shape[2] != h or (tokens is not None and x.shape[1] != tokens):
            raise ValueError(f"{name} must be shaped {want}, got {tuple(x.shape)}")
        if tokens is None and x.shape[1] < 1:
            raise ValueError(f"{name} has no tokens: shape {tuple(x.shape)}")
