"""SiT: a DiT-style latent transformer with continuous time and REPA's projector (REPA(-E) models/sit.py).

Conventions (REPA's, not SiT's): t = 0 is data and t = 1 is noise, x_t = (1 - t) x + t eps, and the network
predicts the velocity v = eps - x. `t` enters as a float in [0, 1] (not x1000).

The latent normalisation (`self.latent_norm`, see latent_norm.py) is held by the model so that its running
statistics are saved and EMA-averaged with it, but `forward` works entirely in the normalised space: the
training recipe calls `model.latent_norm.normalize(z)` before noising, and samplers call
`model.latent_norm.denormalize(x0)` before the VAE decoder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from genbench.models.latent_norm import build_latent_norm
from genbench.models.text import TextEncoder, caption_set


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation. x [N, T, D], shift/scale [N, D]."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


#################################################################################
#                  Embedding layers for patches, time and labels                 #
#################################################################################

class PatchEmbed(nn.Module):
    """timm-style patch embedding: a stride-p conv. [N, C, H, W] -> [N, (H/p)(W/p), D]."""

    def __init__(self, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class TimestepEmbedder(nn.Module):
    """t [N] float in [0, 1] -> [N, D]: a 256-d sinusoid (cos half first), then Linear-SiLU-Linear."""

    def __init__(self, hidden_size: int, frequency_size: int = 256):
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, hidden_size), nn.SiLU(),
                                 nn.Linear(hidden_size, hidden_size))

    @staticmethod
    def sinusoid(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
        """[N] -> [N, dim] = [cos(t f), sin(t f)] with f_k = max_period^(-k / (dim/2))."""
        half = dim // 2
        k = torch.arange(half, dtype=torch.float32, device=t.device)
        freqs = torch.exp(-math.log(max_period) * k / half)
        args = t.float()[:, None] * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.sinusoid(t, self.frequency_size).to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """y [N] long -> [N, D]. Row `num_classes` is the null (unconditional) class; in training each label
    is replaced by it with probability `dropout_prob` (classifier-free guidance)."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), hidden_size)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.training and self.dropout_prob > 0:
            drop = torch.rand(y.shape[0], device=y.device) < self.dropout_prob
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return self.embedding_table(y)


def sincos_pos_embed_2d(dim: int, grid_size: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embedding, [grid_size**2, dim], tokens in row-major order.

    As in DiT/MAE: the first half of the channels encodes the column index, the second the row index;
    each half is [sin(p w), cos(p w)] with w_k = 10000^(-k / (dim/4)).
    """
    rows, cols = torch.meshgrid(torch.arange(grid_size, dtype=torch.float64),
                                torch.arange(grid_size, dtype=torch.float64), indexing="ij")

    def embed_1d(pos: torch.Tensor) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
        angles = pos.flatten()[:, None] * omega[None]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    return torch.cat([embed_1d(cols), embed_1d(rows)], dim=1).float()


#################################################################################
#                                 Core SiT model                                 #
#################################################################################

class Attention(nn.Module):
    """timm-style multi-head self-attention with fused qkv (with bias). [N, T, D] -> [N, T, D]."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    """Linear - tanh-GELU - Linear, timm key names (fc1, fc2)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SiTBlock(nn.Module):
    """adaLN-Zero transformer block: x [N, T, D], c [N, D] -> [N, T, D]."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, 1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        return x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    """LN - modulate - Linear: [N, T, D] -> [N, T, p*p*C_out]."""

    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


def build_projector(hidden_size: int, projector_dim: int, z_dim: int) -> nn.Sequential:
    """REPA projector, applied per token: Linear(D, P) - SiLU - Linear(P, P) - SiLU - Linear(P, z_dim)."""
    return nn.Sequential(nn.Linear(hidden_size, projector_dim), nn.SiLU(),
                         nn.Linear(projector_dim, projector_dim), nn.SiLU(),
                         nn.Linear(projector_dim, z_dim))


class SiT(nn.Module):
    """Latent SiT with an optional REPA projector after block `encoder_depth` (1-based).

    `z_dim = 0` builds no projector (vanilla SiT). `learn_sigma` doubles the output channels as in SiT's
    official checkpoints; the second half is dropped by `forward`.
    """

    def __init__(self, input_size: int = 32, in_channels: int = 4, patch_size: int = 2,
                 hidden_size: int = 1152, depth: int = 28, num_heads: int = 16, mlp_ratio: float = 4.0,
                 class_dropout_prob: float = 0.1, num_classes: int = 1000, learn_sigma: bool = False,
                 z_dim: int = 768, encoder_depth: int = 8,
                 projector_dim: int = 2048, latent_norm: str = "none", latent_scale: float = 0.18215):
        super().__init__()
        if input_size % patch_size:
            raise ValueError(f"input_size {input_size} is not a multiple of patch_size {patch_size}")
        if z_dim and not 1 <= encoder_depth <= depth:
            raise ValueError(f"encoder_depth {encoder_depth} must lie in 1..{depth}")
        self.in_channels = in_channels
        self.out_channels = in_channels * 2 if learn_sigma else in_channels
        self.patch_size = patch_size
        self.num_classes = num_classes
        self.encoder_depth = encoder_depth
        self.grid_size = input_size // patch_size

        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        self.register_buffer("pos_embed", sincos_pos_embed_2d(hidden_size, self.grid_size).unsqueeze(0))
        self.blocks = nn.ModuleList([SiTBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth)])
        self.projector = build_projector(hidden_size, projector_dim, z_dim) if z_dim else None
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.latent_norm = build_latent_norm(latent_norm, in_channels, latent_scale)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier for linears and the patch conv, N(0, 0.02) for the label and t tables, and zeros on every
        adaLN output and the final linear so that a fresh model outputs exactly 0 (adaLN-Zero)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """[N, T, p*p*C] -> [N, C, H, W]."""
        n, p, c, g = x.shape[0], self.patch_size, self.out_channels, self.grid_size
        x = x.reshape(n, g, g, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(n, c, g * p, g * p)

    def forward_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                         align_only: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
        """x [N, C, H, W] (normalised latents), t [N] in [0, 1], y [N] long ->
        (v [N, C, H, W], projected tokens [N, T, z_dim]). With `align_only` the blocks after
        `encoder_depth` and the output layer are skipped and v is None (REPA-E's VAE step)."""
        if self.projector is None:
            raise ValueError("this SiT has no REPA projector (z_dim=0)")
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        projected = None
        for depth, block in enumerate(self.blocks, start=1):
            h = block(h, c)
            if depth == self.encoder_depth:
                projected = self.projector(h)
                if align_only:
                    return None, projected
        return self._output(h, c), projected

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W], t [N] float in [0, 1], y [N] long (num_classes = null) -> v [N, C, H, W]."""
        h = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        for block in self.blocks:
            h = block(h, c)
        return self._output(h, c)

    def _output(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        v = self.unpatchify(self.final_layer(h, c))
        return v[:, : self.in_channels]


#################################################################################
#                                   SiT configs                                  #
#################################################################################

SIT_SIZES = {  # name: (depth, hidden_size, num_heads, REPA encoder_depth)
    "XL": (28, 1152, 16, 8),
    "L": (24, 1024, 16, 8),
    "B": (12, 768, 12, 4),
    "S": (12, 384, 6, 4),
}

SIT_CONFIGS: dict[str, dict] = {
    f"SiT-{size}/{patch}": dict(depth=depth, hidden_size=hidden, num_heads=heads, patch_size=patch,
                                encoder_depth=enc_depth)
    for size, (depth, hidden, heads, enc_depth) in SIT_SIZES.items() for patch in (1, 2, 4)
}
# Tiny configs for CPU tests and the miniature worlds (fast; projector narrowed accordingly).
SIT_CONFIGS["SiT-T/2"] = dict(depth=2, hidden_size=32, num_heads=2, patch_size=2, encoder_depth=1,
                              projector_dim=64)
SIT_CONFIGS["SiT-T/1"] = dict(SIT_CONFIGS["SiT-T/2"], patch_size=1)
SIT_CONFIGS["SiT-T/4"] = dict(SIT_CONFIGS["SiT-T/2"], patch_size=4)
SIT_CONFIGS["SiT-M/2"] = dict(depth=4, hidden_size=96, num_heads=4, patch_size=2, encoder_depth=2,
                              projector_dim=256)


#---------------------------------------------------------------------------------------------------
#                                 Caption-conditioned SiT (text-to-image)
#---------------------------------------------------------------------------------------------------

T_MIN = 0.05  # x-prediction divides by t; JiT clips it the same way


class CrossAttention(nn.Module):
    """Image tokens [N, T, D] attend to text tokens [N, L, D]; the output projection starts at zero."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        heads = self.num_heads
        q = self.q(self.norm(x)).reshape(n, t, heads, d // heads).transpose(1, 2)
        k, v = self.kv(text).reshape(n, text.shape[1], 2, heads, d // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d)
        return self.proj(out)


class TextSiT(SiT):
    """A SiT conditioned on captions: forward(x, t, y) -> v with y [N] caption indices of the caption set
    (`num_classes` = its size; index num_classes = the null caption) or y [N, L] token ids. Every other
    argument is SiT's.

    Conventions match the class-conditional SiT so that genbench's trainer, data and samplers run unchanged:
    the model holds a caption set (`captions`, a name in CAPTION_SETS: every caption of a grammar, tokenised)
    and the condition `y` [N] is a caption index, `num_classes` the number of captions and index
    `num_classes` the null caption (classifier-free guidance), all of whose tokens are the null token. In
    training, captions are replaced by the null caption with probability `class_dropout_prob`. `y` may also be
    token ids [N, L] directly (null: every token `vocab_size`).

    Two ways for the image tokens to read the text (`text_attention`):
    - "cross": after each SiT block, a zero-initialised cross-attention from image tokens to the text tokens
      (PixArt-style; the SiT blocks are unchanged);
    - "joint": the projected text tokens are appended to the image tokens and pass through the same blocks
      (shared-weight joint attention, SD3-style without separate text weights).
    Both also add the pooled caption to the adaLN conditioning.

    `prediction="x"` makes the network predict the clean image x0 and returns the velocity the trainer and
    samplers expect, v = (x_t - x0) / max(t, T_MIN) (JiT, "Back to Basics: Let Denoising Generative Models
    Denoise", 2025: x-prediction with the v-loss). In pixel space a token carries more values than the width
    (192 > 96 for 64 px, pixel_unshuffle 4, patch 2), so a network that must output the noise (v-prediction)
    cannot copy it through; the clean image is low-dimensional and passes. Measured: the v-predicting TextSiT
    stayed at a velocity loss of 0.56-0.61 at every t after 2,200 steps, worse than predicting the mean image.
    """

    def __init__(self, *, captions: str = "shapes", text_attention: str = "cross", text_depth: int = 2,
                 text_width: int | None = None, text_heads: int = 2, prediction: str = "v", **sit_kwargs):
        super().__init__(**sit_kwargs)
        if text_attention not in ("cross", "joint"):
            raise ValueError(f"text_attention {text_attention!r}: choose cross or joint")
        if prediction not in ("v", "x"):
            raise ValueError(f"prediction {prediction!r}: choose v (velocity) or x (clean image)")
        self.prediction = prediction
        ids, self.vocab_size = caption_set(captions)
        if len(ids) != self.num_classes:
            raise ValueError(f"caption set {captions!r} has {len(ids)} captions; num_classes is "
                             f"{self.num_classes}")
        null = torch.full((1, ids.shape[1]), self.vocab_size, dtype=torch.long)
        # saved with the weights, so a checkpoint keeps the captions it was trained on
        self.register_buffer("caption_ids", torch.cat([ids, null]))
        hidden = self.x_embedder.proj.out_channels
        width = text_width or hidden
        num_heads = self.blocks[0].attn.num_heads
        self.text_attention = text_attention
        self.caption_dropout = sit_kwargs.get("class_dropout_prob", 0.1)
        self.y_embedder = None  # the caption replaces the class label
        self.text_encoder = TextEncoder(self.vocab_size, width, text_depth, text_heads, ids.shape[1])
        self.text_pool = nn.Linear(width, hidden)
        self.text_proj = nn.Linear(width, hidden)
        self.cross_attention = nn.ModuleList(
            [CrossAttention(hidden, num_heads) for _ in self.blocks] if text_attention == "cross" else [])
        for layer in (self.text_pool, self.text_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        for attention in self.cross_attention:
            for layer in (attention.q, attention.kv):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
            nn.init.zeros_(attention.proj.weight)
            nn.init.zeros_(attention.proj.bias)

    def token_ids(self, y: torch.Tensor) -> torch.Tensor:
        """Caption indices [N] -> token ids [N, L] (token ids pass through)."""
        if y.ndim == 1:
            return self.caption_ids[y]
        if y.ndim == 2:
            return y
        raise ValueError(f"TextSiT reads caption indices [N] or token ids [N, L]; got shape {tuple(y.shape)}")

    def _condition(self, t: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(adaLN condition [N, D], text tokens [N, L, D]); whole captions dropped in training."""
        ids = self.token_ids(y)
        if self.training and self.caption_dropout > 0:
            drop = torch.rand(ids.shape[0], device=ids.device) < self.caption_dropout
            ids = torch.where(drop[:, None], torch.full_like(ids, self.vocab_size), ids)
        tokens, pooled = self.text_encoder(ids)
        return self.t_embedder(t) + self.text_pool(pooled), self.text_proj(tokens)

    def _blocks(self, h: torch.Tensor, c: torch.Tensor, text: torch.Tensor, stop_at: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image tokens after all blocks (or after block `stop_at`), and those after block encoder_depth."""
        image_tokens = h.shape[1]
        aligned = None
        if self.text_attention == "joint":
            h = torch.cat([h, text], dim=1)
        for depth, block in enumerate(self.blocks, start=1):
            h = block(h, c)
            if self.text_attention == "cross":
                h = h + self.cross_attention[depth - 1](h, text)
            if depth == self.encoder_depth and self.projector is not None:
                aligned = self.projector(h[:, :image_tokens])
            if depth == stop_at:
                break
        return h[:, :image_tokens], aligned

    def _velocity(self, x: torch.Tensor, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The network output as a velocity: itself, or (x_t - x0) / t for x-prediction."""
        if self.prediction == "v":
            return out
        return (x - out) / t.clamp(min=T_MIN).view(-1, 1, 1, 1).to(out.dtype)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        c, text = self._condition(t, y)
        h, _ = self._blocks(self.x_embedder(x) + self.pos_embed, c, text)
        return self._velocity(x, t, self._output(h, c))

    def forward_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
                         align_only: bool = False) -> tuple[torch.Tensor | None, torch.Tensor]:
        if self.projector is None:
            raise ValueError("this SiT has no REPA projector (z_dim=0)")
        c, text = self._condition(t, y)
        h, projected = self._blocks(self.x_embedder(x) + self.pos_embed, c, text,
                                    stop_at=self.encoder_depth if align_only else None)
        return (None if align_only else self._velocity(x, t, self._output(h, c))), projected


# Caption-conditioned SiTs (TextSiT above): any config with a `text_attention` override.
SIT_CONFIGS["TextSiT-T/2"] = dict(SIT_CONFIGS["SiT-T/2"], text_attention="cross")
SIT_CONFIGS["TextSiT-M/2"] = dict(SIT_CONFIGS["SiT-M/2"], text_attention="cross")


def build_sit(name: str, **overrides) -> SiT:
    """Build a SiT from a registry name ("SiT-XL/2") with keyword overrides (input_size, z_dim, ...); a
    `text_attention` entry builds the caption-conditioned TextSiT."""
    if name not in SIT_CONFIGS:
        raise ValueError(f"unknown SiT config {name!r}; choose from {sorted(SIT_CONFIGS)}")
    config = {**SIT_CONFIGS[name], **overrides}
    if "text_attention" in config:
        return TextSiT(**config)
    return SiT(**config)
