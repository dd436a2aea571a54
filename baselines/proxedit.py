"""``proxedit``: ProxEdit (negative-prompt inversion + prompt-to-prompt + proximal guidance).

The LEGO paper's ProxEdit baseline (Sec. 4.2; Han et al., "Improving
Tuning-Free Real Image Editing with Proximal Guidance", WACV 2024) on the LDM
finetuned on egocentric frames with action labels (``ldm-ego4d`` /
``ldm-epic``, made by ``egobench train ldm``; the same LDM as ``sdedit``).
Behaviour after the authors' code (GitHub ``phymhan/prompt-to-prompt``,
``negative_prompt_inversion.py`` + ``ptp_utils.py`` + ``seq_aligner.py``),
re-implemented on diffusers components:

1. **DDIM inversion** of the input latent (VAE posterior mean x 0.18215) with
   the *source* prompt and no guidance (guidance 1), keeping every latent of
   the trajectory ``z*_0 .. z*_N``.
2. **Negative-prompt inversion**: the unconditional embedding is replaced by
   the source prompt's embedding at every step, so the source branch
   (``e_u = e_c``) retraces the inversion without null-text optimisation.
3. **Prompt-to-prompt** on the batch ``[source, target]`` through a diffusers
   attention processor (:class:`P2PAttnProcessor`): attention-*refine* edit
   (the code's default; prompts of different lengths), the target's
   conditional branch takes the source's cross-attention maps through a
   token alignment for the first ``cross_replace`` (0.4) of the steps and the
   source's self-attention maps for the first ``self_replace`` (0.6) of the
   steps (maps with at most 32 x 32 queries, which at 256 x 256 frames is
   every layer). No local blend, no reweighting.
4. **Proximal guidance** on the target branch: ``d = e_c - e_u``;
   ``tau = quantile(|d|, q)`` (q 0.7); ``d <- prox(d, tau)`` (:func:`prox_l0`,
   :func:`prox_l1`); ``e = e_u + w d`` (w = the protocol's text guidance, 7.5).
5. **Inversion guidance** for ``t < recon_t`` (400): edit mask
   ``m = dilate(|d_prox| > tau)`` (radius 1, per latent channel) and
   ``z <- z - lr (z - z*_t) (1 - m)`` (lr 1) after each DDIM step, so
   positions the edit leaves alone stay on the inversion trajectory.

**Prompts.** Target prompt = the action label (``sample.action``), the text
the LDM was finetuned on and the text ``sdedit`` and ``ip2p`` get. Source
prompt = the empty string (``-o source_prompt=...`` changes it), because:

- the benchmark has no caption of the input frame: its only texts, the action
  label and the enriched description, both describe the *action frame*; a
  source prompt naming the action leaves no edit direction, and a caption
  from a captioning model would put a model outside the benchmark's inputs
  into the baseline (and make its score depend on that model);
- under negative-prompt inversion the unconditional embedding becomes the
  source embedding; with ``""`` that is CLIP(""), the null embedding SD 1.5's
  classifier-free guidance was trained against, so ``d = e(label) - e("")``
  is exactly the model's guidance direction toward the action;
- a fixed "neutral" caption ("a first-person photo of a kitchen") is false
  for many frames (Ego4D spans workshops, gardens, streets) and its words
  would be aligned against the label's words arbitrarily by prompt-to-prompt;
  with ``""`` the refinement is well defined: start, end and padding tokens
  keep the source's maps (which carry the layout), every label token attends
  freely.

**Where this differs from the authors' script, and why.**

- Schedulers are diffusers' ``DDIMScheduler`` / ``DDIMInverseScheduler`` built
  from one config with ``steps_offset=1`` (SD 1.5's setting; 50 steps: t = 981
  .. 1), so the inversion ends at the noise level the first denoising step
  starts from and ``z*_k`` sits at the level each denoising step lands on. The
  script's own loops use offset 0 (t = 980 .. 0): the same alignment, one
  timestep lower; ``t < 400`` covers the same number of steps either way.
- The input frame is squashed to ``resolution`` x ``resolution`` with LANCZOS
  like every method of the harness, not center-cropped to 512 x 512
  (``load_512``), so no part of the frame is lost.
- Latents stay in float32 between UNet calls; the guidance arithmetic (and
  the quantile, which PyTorch has no half-precision kernel for) is float32.
- Kept as in the code: the threshold is the quantile over the ``[source,
  target]`` batch whose source row is all zeros (``e_u = e_c`` there), so
  about ``2q - 1`` of the target's entries fall below it; the source row's
  mask is 0, so the source branch is pulled onto the trajectory as well.
- Throughput: each edit step is one UNet call on the three rows ``[source, target
  uncond, target cond]``; inversion is one call per step (no guidance). Samples run
  one at a time (the attention controller is built per sample from its prompts'
  tokens). Outside the edit the UNet keeps diffusers' scaled-dot-product attention;
  the edit's processor computes the attention probabilities itself, because
  prompt-to-prompt rewrites them and SDPA never exposes them. No ``compile`` option:
  the controller swaps processors and keeps per-step state, which would recompile.

Protocol settings used: ``resolution``; ``steps`` (inversion and editing
steps; ProxEdit's own default is 50, pass ``-o steps=50`` for it);
``text_guidance`` -> w; ``precision`` (GPU only). Not used: ``scheduler``
(the method is defined on DDIM), ``image_guidance``, and the seeds (DDIM
inversion and sampling with eta 0 are deterministic; nothing is drawn).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from diffusion_core.feedback import StepProgress, library_output
from egobench.data import Sample
from egobench.errors import ConfigError

from . import sdedit  # noqa: F401  (declares the ldm-* artifacts)
from ._common import PipelineMethod, action_prompt, check_seeds, domain_of, load_input
from .sdedit import ldm_artifact

#: prompt-to-prompt replaces self-attention maps with at most this many queries
#: (``replace_self_attention``: ``att_replace.shape[2] <= 32 ** 2``)
SELF_REPLACE_MAX_QUERIES = 32**2


# ---------------------------------------------------------------------------
# Proximal guidance: pure functions
# ---------------------------------------------------------------------------
def threshold(abs_d: Any, quantile: float) -> Any:
    """``tau``: the ``quantile`` of ``abs_d`` over all its entries; a quantile
    <= 0 is a fixed threshold ``-quantile`` (as the code)."""
    import torch

    if quantile > 0:
        return abs_d.float().flatten().quantile(quantile)
    return torch.tensor(-quantile, dtype=torch.float32, device=abs_d.device)


def pair_threshold(d: Any, quantile: float) -> Any:
    """``tau`` as the code computes it for one edit: over the ``[source, target]``
    batch, whose source row is zero under negative-prompt inversion."""
    import torch

    a = d.abs().float()
    return threshold(torch.cat([torch.zeros_like(a), a]), quantile)


def prox_l0(d: Any, tau: Any) -> Any:
    """The code's ``l0`` operator: ``d - clamp(d, -tau, tau)``.

    Entries with ``|d| <= tau`` become 0, the others shrink toward 0 by
    ``tau`` (``sign(d) (|d| - tau)``): soft thresholding, i.e. the proximal
    operator of ``tau ||.||_1``, despite the name. Its edit mask
    ``|prox_l0(d)| > tau`` selects ``|d| > 2 tau``.
    """
    return d - d.clamp(-tau, tau)


def prox_l1(d: Any, tau: Any) -> Any:
    """The code's ``l1`` operator: soft thresholding, then
    ``where(s > 0, s - tau, s)`` followed by ``where(s < 0, s + tau, s)``.

    The two ``where`` calls run in sequence, so the result is asymmetric:
    0 for ``|d| <= tau``; ``d - tau`` for ``tau < d < 2 tau``; ``d - 2 tau``
    for ``d >= 2 tau``; ``d + 2 tau`` for ``d < -tau`` (positive for
    ``-2 tau < d < -tau``). Its edit mask selects ``|d| > 3 tau``.
    """
    import torch

    s = d - d.clamp(-tau, tau)
    s = torch.where(s > 0, s - tau, s)
    return torch.where(s < 0, s + tau, s)


PROX: dict[str, Callable[[Any, Any], Any]] = {"l0": prox_l0, "l1": prox_l1}


def edit_mask(d_prox: Any, tau: Any, radius: int = 1) -> Any:
    """``|d_prox| > tau`` as float, dilated by a (2r+1) square max-pool per channel
    (``ptp_utils.dilate``); shape (B, C, H, W) like ``d_prox``."""
    import torch.nn.functional as F

    mask = (d_prox.abs() > tau).float()
    if radius > 0:
        mask = F.max_pool2d(mask, kernel_size=2 * radius + 1, stride=1, padding=radius)
    return mask


def inversion_guidance(z: Any, z_inv: Any, mask: Any, lr: float) -> Any:
    """``z - lr (z - z_inv) (1 - mask)``: unedited positions move onto the inversion trajectory."""
    return z - lr * (z - z_inv) * (1 - mask)


# ---------------------------------------------------------------------------
# Prompt-to-prompt through diffusers attention processors
# ---------------------------------------------------------------------------
def align_tokens(src: Sequence[int], tar: Sequence[int]) -> list[int]:
    """For each target token, the index of the source token it aligns with, or -1.

    Global alignment (Needleman-Wunsch) with match +1, mismatch -1, gap 0 and
    the code's tie order (gap in the source, then gap in the target, then
    match/mismatch), as ``seq_aligner.get_refinement_mapper``.
    """
    n, m = len(src), len(tar)
    score = [[0] * (m + 1) for _ in range(n + 1)]
    move = [[0] * (m + 1) for _ in range(n + 1)]  # 1: left (target token only), 2: up, 3: diagonal
    for j in range(1, m + 1):
        move[0][j] = 1
    for i in range(1, n + 1):
        move[i][0] = 2
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            left, up = score[i][j - 1], score[i - 1][j]
            diag = score[i - 1][j - 1] + (1 if src[i - 1] == tar[j - 1] else -1)
            best = max(left, up, diag)
            score[i][j] = best
            move[i][j] = 1 if best == left else 2 if best == up else 3
    out = [-1] * m
    i, j = n, m
    while i > 0 or j > 0:
        step = move[i][j]
        if step == 3:
            i, j = i - 1, j - 1
            out[j] = i
        elif step == 1:
            j -= 1
        else:
            i -= 1
    return out


def refinement_mapper(src: Sequence[int], tar: Sequence[int], max_len: int = 77) -> tuple[Any, Any]:
    """(mapper, alphas) of length ``max_len``: target position -> source position, and
    1 where the target takes the source's map (aligned tokens and padding), 0 for new
    tokens. Positions past the target's tokens map to themselves."""
    import torch

    tar = list(tar)[:max_len]
    aligned = align_tokens(list(src)[:max_len], tar)
    mapper = torch.arange(max_len, dtype=torch.int64)
    alphas = torch.ones(max_len)
    for j, i in enumerate(aligned):
        mapper[j] = i
        alphas[j] = float(i != -1)
    return mapper, alphas


class PromptToPrompt:
    """Attention control for the batch ``[source, target-uncond, target-cond]``:
    the target's conditional row takes the source row's maps (cross: refined
    through the token mapper while ``step < cross_until``; self: replaced while
    ``step < self_until``). The unconditional row is left alone, as the code
    controls only the conditional half of its batch."""

    BASE, EDIT, ROWS = 0, 2, 3

    def __init__(self, mapper: Any, alphas: Any, steps: int, cross_replace: float, self_replace: float):
        self.mapper = mapper
        self.alphas = alphas
        self.cross_until = int(cross_replace * (steps + 1))  # get_time_words_attention_alpha: steps + 1 rows
        self.self_until = int(self_replace * steps)
        self.step = 0

    def __call__(self, probs: Any, is_cross: bool) -> Any:
        rows = probs.shape[0]
        if rows % self.ROWS:
            raise ValueError(f"prompt-to-prompt expects a batch of {self.ROWS} rows, got {rows} heads x batch")
        p = probs.view(self.ROWS, rows // self.ROWS, *probs.shape[1:])
        if is_cross:
            if self.step < self.cross_until:
                base = p[self.BASE][..., self.mapper.to(probs.device)]
                a = self.alphas.to(probs.device, probs.dtype)
                p[self.EDIT] = base * a + p[self.EDIT] * (1 - a)
        elif self.step < self.self_until and probs.shape[1] <= SELF_REPLACE_MAX_QUERIES:
            p[self.EDIT] = p[self.BASE]
        return probs


class P2PAttnProcessor:
    """diffusers' plain ``AttnProcessor`` with the attention probabilities passed
    through a :class:`PromptToPrompt` controller before they weight the values."""

    def __init__(self, controller: PromptToPrompt):
        self.controller = controller

    def __call__(self, attn: Any, hidden_states: Any, encoder_hidden_states: Any = None,
                 attention_mask: Any = None, temb: Any = None, *args: Any, **kwargs: Any) -> Any:
        import torch

        is_cross = encoder_hidden_states is not None
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch, length, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        query = attn.head_to_batch_dim(query)
        probs = attn.get_attention_scores(query, key, attention_mask)
        probs = self.controller(probs, is_cross)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


# ---------------------------------------------------------------------------
# The editor: DDIM inversion and the ProxEdit sampling loop on SD components
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxEditSettings:
    """The numbers of one edit (ProxEdit's defaults; ``steps`` and ``guidance``
    come from the protocol in the method)."""

    steps: int = 50
    guidance: float = 7.5
    prox: Literal["l0", "l1", "none"] = "l0"
    quantile: float = 0.7
    inversion_guidance: bool = True
    recon_t: int = 400
    recon_lr: float = 1.0
    dilate: int = 1
    cross_replace: float = 0.4
    self_replace: float = 0.6


def ddim_config(config: Any) -> dict[str, Any]:
    """A folder's scheduler config as ProxEdit's DDIM: SD 1.5's offset, no clipping,
    ``alphas_cumprod[0]`` at the clean end (``set_alpha_to_one=False``)."""
    return {**dict(config), "steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False,
            "timestep_spacing": "leading", "prediction_type": "epsilon"}


class ProxEditor:
    """ProxEdit on the components of a Stable Diffusion pipeline."""

    def __init__(self, unet: Any, vae: Any, text_encoder: Any, tokenizer: Any, scheduler_config: Any):
        from diffusers import DDIMInverseScheduler, DDIMScheduler

        self.unet, self.vae, self.text_encoder, self.tokenizer = unet, vae, text_encoder, tokenizer
        config = ddim_config(scheduler_config)
        self.scheduler = DDIMScheduler.from_config(config)
        self.inverse_scheduler = DDIMInverseScheduler.from_config(config)

    @classmethod
    def from_pipeline(cls, pipe: Any) -> ProxEditor:
        return cls(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler.config)

    @property
    def device(self) -> Any:
        return self.unet.device

    # -- encoders ---------------------------------------------------------------
    def token_ids(self, prompt: str) -> list[int]:
        return self.tokenizer(prompt, truncation=True, max_length=self.tokenizer.model_max_length).input_ids

    def encode_text(self, prompts: list[str]) -> Any:
        import torch

        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            return self.text_encoder(ids.to(self.text_encoder.device))[0].to(self.unet.dtype)

    def encode_image(self, image: Any) -> Any:
        """(B, 3, H, W) in [-1, 1] -> scaled posterior-mean latents (float32)."""
        import torch

        with torch.no_grad():
            z = self.vae.encode(image.to(self.vae.device, self.vae.dtype)).latent_dist.mean
        return z.float() * self.vae.config.scaling_factor

    def decode(self, z: Any) -> Any:
        """Latents -> (B, 3, H, W) images in [0, 1] (clamped, as the code's ``latent2image``)."""
        import torch

        with torch.no_grad():
            x = self.vae.decode((z / self.vae.config.scaling_factor).to(self.vae.dtype)).sample
        return (x.float() / 2 + 0.5).clamp(0, 1)

    def eps(self, z: Any, t: Any, emb: Any) -> Any:
        import torch

        with torch.no_grad():
            return self.unet(z.to(self.unet.dtype), t, encoder_hidden_states=emb).sample.float()

    # -- inversion and plain sampling -------------------------------------------
    def invert(self, z0: Any, emb: Any, steps: int, on_step: Callable[[], None] | None = None) -> list[Any]:
        """DDIM inversion with ``emb`` and no guidance: ``[z*_0, ..., z*_N]`` (float32);
        ``z*_k`` sits at the noise level of the k-th inverse timestep. ``on_step``: called
        after each step (progress)."""
        sched = self.inverse_scheduler
        sched.set_timesteps(steps, device=self.device)
        out = [z0.float()]
        z = out[0]
        for t in sched.timesteps:
            z = sched.step(self.eps(z, t, emb), t, z).prev_sample.float()
            out.append(z)
            if on_step is not None:
                on_step()
        return out

    def sample(self, z: Any, emb: Any, steps: int) -> Any:
        """Plain DDIM sampling from ``z`` (the last inverted latent) with ``emb``, no guidance."""
        sched = self.scheduler
        sched.set_timesteps(steps, device=self.device)
        z = z.float()
        for t in sched.timesteps:
            z = sched.step(self.eps(z, t, emb), t, z).prev_sample.float()
        return z

    # -- the edit -----------------------------------------------------------------
    def edit(self, trajectory: list[Any], source: str, target: str, settings: ProxEditSettings,
             trace: list[dict] | None = None, on_step: Callable[[], None] | None = None) -> Any:
        """The target latent after ProxEdit from the inversion ``trajectory`` of the source.

        ``trace``: if a list, one dict per step is appended (timestep, tau, mask,
        the latents before guidance and the inversion latent) for inspection.
        ``on_step``: called after each step (progress).
        """
        import torch

        s = settings
        n = len(trajectory) - 1
        if n != s.steps:
            raise ValueError(f"trajectory has {n} steps, settings say {s.steps}")
        src_emb, tar_emb = self.encode_text([source]), self.encode_text([target])
        context = torch.cat([src_emb, src_emb, tar_emb])  # [source, target uncond (NPI), target cond]
        mapper, alphas = refinement_mapper(self.token_ids(source), self.token_ids(target),
                                           self.tokenizer.model_max_length)
        controller = PromptToPrompt(mapper, alphas, n, s.cross_replace, s.self_replace)
        sched = self.scheduler
        sched.set_timesteps(n, device=self.device)
        z = torch.cat([trajectory[-1], trajectory[-1]]).float()  # [source, target]
        saved = dict(self.unet.attn_processors)
        self.unet.set_attn_processor(P2PAttnProcessor(controller))
        try:
            for i, t in enumerate(sched.timesteps):
                controller.step = i
                e = self.eps(torch.cat([z[:1], z[1:], z[1:]]), t, context)
                e_src, e_u, e_c = e[0:1], e[1:2], e[2:3]
                d = e_c - e_u
                mask = tau = None
                if s.prox != "none":
                    tau = pair_threshold(d, s.quantile)
                    d = PROX[s.prox](d, tau)
                    if s.inversion_guidance and int(t) < s.recon_t:
                        mask = torch.cat([torch.zeros_like(d), edit_mask(d, tau, s.dilate)])
                e_tar = e_u + s.guidance * d
                z = sched.step(torch.cat([e_src, e_tar]), t, z).prev_sample.float()
                z_inv = trajectory[n - 1 - i]
                stepped = z
                if mask is not None:
                    z = inversion_guidance(z, z_inv.expand_as(z), mask, s.recon_lr)
                if trace is not None:
                    trace.append({"t": int(t), "tau": tau, "mask": mask, "stepped": stepped, "z": z, "z_inv": z_inv})
                if on_step is not None:
                    on_step()
        finally:
            self.unet.set_attn_processor(saved)
        return z[1:]


# ---------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxEditOptions:
    """Options of ``proxedit`` (``-o key=value`` / ``method_options``)."""

    #: a Stable Diffusion diffusers folder for every dataset; default: ``ldm-<dataset>``
    ldm: str | None = None
    #: the source prompt of the inversion (see the module docstring for why empty)
    source_prompt: str = ""
    #: DDIM steps of inversion and editing; default: the protocol's ``steps``
    steps: int | None = None
    #: guidance scale w; default: the protocol's ``text_guidance``
    guidance: float | None = None
    #: proximal operator on ``e_c - e_u`` (the code's ``l0``/``l1``), or none (plain NPI + P2P)
    prox: Literal["l0", "l1", "none"] = "l0"
    #: tau = this quantile of |d| (a value <= 0 is a fixed threshold -value)
    quantile: float = 0.7
    #: pull unedited positions onto the inversion trajectory for t < recon_t
    inversion_guidance: bool = True
    recon_t: int = 400
    recon_lr: float = 1.0
    #: edit-mask dilation radius (latent pixels)
    dilate: int = 1
    #: fraction of the steps with cross-attention refinement / self-attention replacement
    cross_replace: float = 0.4
    self_replace: float = 0.6


class ProxEdit(PipelineMethod):
    """ProxEdit (negative-prompt inversion, prompt-to-prompt, proximal and inversion guidance)."""

    name = "proxedit"
    summary = "ProxEdit: DDIM/negative-prompt inversion + prompt-to-prompt + proximal guidance (finetuned SD 1.5)"
    artifacts = ("ldm-ego4d", "ldm-epic")
    options_class = ProxEditOptions
    pipeline_class = "StableDiffusionPipeline"
    train_command = "egobench train ldm"
    folder_option = "ldm"

    def check_options(self) -> None:
        o = self.options
        problems = []
        if o.steps is not None and not 1 <= o.steps <= 1000:
            problems.append(f"steps must be in 1..1000, got {o.steps}")
        for field in ("cross_replace", "self_replace"):
            if not 0.0 <= getattr(o, field) <= 1.0:
                problems.append(f"{field} must be in [0, 1], got {getattr(o, field)}")
        if o.quantile >= 1.0:
            problems.append(f"quantile must be below 1, got {o.quantile}")
        if o.dilate < 0:
            problems.append(f"dilate must be >= 0, got {o.dilate}")
        if not 0 <= o.recon_t <= 1000:
            problems.append(f"recon_t must be in 0..1000, got {o.recon_t}")
        if problems:
            raise ConfigError(f"method '{self.name}': {'; '.join(problems)}")

    @property
    def settings(self) -> ProxEditSettings:
        o, gen = self.options, self.protocol.generation
        return ProxEditSettings(
            steps=o.steps or gen.steps, guidance=gen.text_guidance if o.guidance is None else o.guidance,
            prox=o.prox, quantile=o.quantile, inversion_guidance=o.inversion_guidance, recon_t=o.recon_t,
            recon_lr=o.recon_lr, dilate=o.dilate, cross_replace=o.cross_replace, self_replace=o.self_replace,
        )

    def artifact(self, domain: str) -> str:
        return ldm_artifact(domain)

    def configure(self, pipe: Any) -> None:
        """ProxEdit is defined on DDIM; the editor builds its own schedulers."""

    def config(self) -> dict[str, Any]:
        return {
            **self.base_config(),
            "settings": dataclasses.asdict(self.settings),
            "source_prompt": self.options.source_prompt,
            "target_prompt": "action label",
            "sampler": "diffusers DDIM / DDIMInverse, steps_offset=1, eta 0 (deterministic; seeds unused)",
        }

    def generate(self, samples: Sequence[Sample], seeds: Sequence[int | None]) -> list[Any]:
        import numpy as np
        import torch

        check_seeds(samples, seeds)  # validated, not used: nothing is drawn
        s = self.settings
        res = self.protocol.generation.resolution
        out = []
        bars = StepProgress(self.name, len(samples), self.progress)
        with library_output(quiet=not self.progress), bars:
            for sample in samples:  # one sample at a time: nothing is batched, nothing drawn
                editor = ProxEditor.from_pipeline(self.pipeline(domain_of(sample)))
                image = np.asarray(load_input(sample, res), dtype=np.float32) / 127.5 - 1.0
                x = torch.from_numpy(image).permute(2, 0, 1)[None]
                source = self.options.source_prompt
                bars.sample(1, 2 * s.steps)  # inversion, then the edit
                trajectory = editor.invert(editor.encode_image(x), editor.encode_text([source]), s.steps,
                                           on_step=bars.step)
                z = editor.edit(trajectory, source, action_prompt(sample), s, on_step=bars.step)
                out.append(editor.decode(z)[0].cpu().numpy())
        return out
