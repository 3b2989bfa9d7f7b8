"""The text side of caption conditioning: a closed-vocabulary caption tokenizer, a small transformer text
encoder trained with the SiT (genbench.models.sit.TextSiT reads it), and the registered caption sets.

Why a trained encoder and not a frozen CLIP text tower: the shapes world speaks a closed grammar of ~30
words (GenEval's templates over its kinds and colours), no pre-trained text weights exist offline here, and
a frozen random tower would only hash the words; two small transformer layers trained end to end by the
diffusion loss learn exactly the distinctions the images need (which colour binds to which kind, which
object stands left of which).
"""

from __future__ import annotations

import importlib
import re

import torch
from torch import nn

from genbench.errors import GenbenchError

PAD = "<pad>"
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


def caption_set(name: str) -> tuple[torch.Tensor, int]:
    """(token ids long [P, L], vocabulary size) of a registered caption set."""
    if name not in CAPTION_SETS:
        raise ValueError(f"caption set {name!r}: unknown; choose from {sorted(CAPTION_SETS)}")
    module, function = CAPTION_SETS[name].split(":")
    return getattr(importlib.import_module(module), function)()
