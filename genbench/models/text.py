"""Text conditioning for SiT: a closed-vocabulary caption tokenizer, a small transformer text encoder
trained with the SiT, and `TextSiT`, a SiT whose condition is a caption instead of a class label.

Why a trained encoder and not a frozen CLIP text tower: the shapes world speaks a closed grammar of ~30
words (GenEval's templates over its kinds and colours), no pre-trained text weights exist offline here, and
a frozen random tower would only hash the words; two small transformer layers trained end to end by the
diffusion loss learn exactly the distinctions the images need (which colour binds to which kind, which
object stands left of which).

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

from __future__ import annotations

import importlib
import re

import torch
import torch.nn.functional as F
from torch import nn

from genbench.errors import GenbenchError
from genbench.models.sit import SiT

PAD = "<pad>"
T_MIN = 0.05  # x-prediction divides by t; JiT clips it the same way
# caption set name -> "module:function" returning (token ids long [P, L], vocabulary size)
CAPTION_SETS = {"shapes": "genbench.geneval.t2i:grammar_caption_ids"}


class CaptionTokenizer:
    """Words -> ids over a fixed vocabulary (id 0 = padding), padded or refused beyond `max_tokens`."""

    def __init__(self, words: list[str], max_tokens: int):
        self.words = [PAD, *dict.fromkeys(words)]
        self.ids = {word: index for index, word in enumerate(self.words)}
        self.max_tokens = max_tokens

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, caption: str) -> list[int]:
        words = re.findall(r"[a-z]+", caption.lower())
        unknown = [w for w in words if w not in self.ids]
        if unknown:
            raise GenbenchError(f"caption {caption!r}: words {unknown} are not in the model's vocabulary "
                                f"({', '.join(self.words[1:])})")
        if len(words) > self.max_tokens:
            raise GenbenchError(f"caption {caption!r}: {len(words)} words; the model reads at most "
                                f"{self.max_tokens}")
        return [self.ids[w] for w in words] + [0] * (self.max_tokens - len(words))

    def __call__(self, captions: list[str]) -> torch.Tensor:
        """long [N, max_tokens]."""
        return torch.tensor([self.encode(c) for c in captions], dtype=torch.long)


class TextEncoder(nn.Module):
    """ids [N, L] (vocab_size + 1 rows: the last is the null token) -> tokens [N, L, width], pooled [N, width]
    (mean over the positions that are not padding)."""

    def __init__(self, vocab_size: int, width: int, depth: int, num_heads: int, max_tokens: int):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size + 1, width)
        self.position_embedding = nn.Parameter(torch.zeros(1, max_tokens, width))
        layer = nn.TransformerEncoderLayer(width, num_heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding, std=0.02)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.token_embedding(ids) + self.position_embedding[:, : ids.shape[1]]
        tokens = self.norm(self.layers(embedded))
        keep = (ids != 0).unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * keep).sum(1) / keep.sum(1).clamp(min=1)
        return tokens, pooled


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


def caption_set(name: str) -> tuple[torch.Tensor, int]:
    """(token ids long [P, L], vocabulary size) of a registered caption set."""
    if name not in CAPTION_SETS:
        raise ValueError(f"caption set {name!r}: unknown; choose from {sorted(CAPTION_SETS)}")
    module, function = CAPTION_SETS[name].split(":")
    return getattr(importlib.import_module(module), function)()


class TextSiT(SiT):
    """A SiT conditioned on captions: forward(x, t, y) -> v with y [N] caption indices of the caption set
    (`num_classes` = its size; index num_classes = the null caption) or y [N, L] token ids. Every other
    argument is SiT's."""

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
