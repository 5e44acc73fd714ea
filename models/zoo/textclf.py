"""Small transformer text classifier: token + position embeddings, 2 encoder blocks, padding mask, seeded weights.

A built-in that proves the bring-your-own-model path beyond conv nets: two int64 inputs (token ids and an
attention mask, 1 = token, 0 = padding), multi-head attention that ignores padded keys, a masked mean pool.
Nothing is downloaded: the weights are drawn from a fixed seed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

description = "transformer text classifier (2 blocks, 4 heads, d=64, 32 tokens) with seeded weights"
output_names = ["logits", "probabilities"]
max_batch = 32
slo_p99_ms = 100.0
tolerance = {"atol": 1e-4, "rtol": 1e-3}

VOCAB = 1000
SEQ = 32
DIM = 64
HEADS = 4
BLOCKS = 2
CLASSES = 4
EPS = 1e-5
SEED = 20261130


class Block(nn.Module):
    """Post-norm encoder block: self-attention with a key padding mask, then a GELU feed-forward."""

    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
        self.ln1 = nn.LayerNorm(DIM, eps=EPS)
        self.ff1 = nn.Linear(DIM, 4 * DIM)
        self.ff2 = nn.Linear(4 * DIM, DIM)
        self.ln2 = nn.LayerNorm(DIM, eps=EPS)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attn(x, x, x, key_padding_mask=padding, need_weights=False)
        x = self.ln1(x + attended)
        return self.ln2(x + self.ff2(nn.functional.gelu(self.ff1(x))))


class TextClassifier(nn.Module):
    """Token ids and attention mask [batch, 32] (int64) -> class logits and probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.tok = nn.Embedding(VOCAB, DIM)
        self.pos = nn.Embedding(SEQ, DIM)
        self.blocks = nn.ModuleList(Block() for _ in range(BLOCKS))
        self.norm = nn.LayerNorm(DIM, eps=EPS)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.cumsum(torch.ones_like(input_ids), dim=1) - 1
        x = self.tok(input_ids) + self.pos(positions)
        padding = attention_mask == 0  # True where a key must be ignored
        for block in self.blocks:
            x = block(x, padding)
        weights = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        logits = self.head(self.norm(pooled))
        return logits, torch.softmax(logits, dim=-1)


def architecture() -> nn.Module:
    """The module TorchServe rebuilds before loading the exported weights."""
    return TextClassifier().eval()


def build() -> nn.Module:
    """The classifier with weights drawn from a fixed seed (std 0.2 so that attention is far from uniform)."""
    torch.manual_seed(SEED)
    model = TextClassifier()
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if "ln" in name or name.startswith("norm"):
                continue  # LayerNorm keeps gamma=1, beta=0
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.2)
    return model.eval()


def example_inputs(batch: int) -> dict[str, np.ndarray]:
    """Random token ids with a random number of real tokens per row (at least 4), the rest padding."""
    rng = np.random.default_rng(1000 + batch)
    ids = rng.integers(1, VOCAB, size=(batch, SEQ), dtype=np.int64)
    lengths = rng.integers(4, SEQ + 1, size=batch)
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype(np.int64)
    return {"input_ids": ids * mask, "attention_mask": mask}


def build_keras():  # keras is imported lazily: TorchServe imports this file without it
    """The same network in Keras 3; layer names are the torch module paths with '.' -> '_' (the port's rule)."""
    import keras
    from keras import layers, ops

    ids = keras.Input((SEQ,), dtype="int64", name="input_ids")
    mask = keras.Input((SEQ,), dtype="int64", name="attention_mask")
    positions = ops.cumsum(ops.ones_like(ids), axis=1) - 1
    x = layers.Embedding(VOCAB, DIM, name="tok")(ids) + layers.Embedding(SEQ, DIM, name="pos")(positions)
    attend = ops.expand_dims(ops.not_equal(mask, 0), 1)  # [batch, 1, keys]: True where a key may be attended
    for i in range(BLOCKS):
        attn = layers.MultiHeadAttention(HEADS, DIM // HEADS, name=f"blocks_{i}_attn")
        x = layers.LayerNormalization(epsilon=EPS, name=f"blocks_{i}_ln1")(x + attn(x, x, attention_mask=attend))
        hidden = layers.Dense(4 * DIM, activation=None, name=f"blocks_{i}_ff1")(x)
        hidden = layers.Dense(DIM, name=f"blocks_{i}_ff2")(keras.activations.gelu(hidden, approximate=False))
        x = layers.LayerNormalization(epsilon=EPS, name=f"blocks_{i}_ln2")(x + hidden)
    weights = ops.expand_dims(ops.cast(mask, "float32"), -1)
    pooled = ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
    normed = layers.LayerNormalization(epsilon=EPS, name="norm")(pooled)
    logits = layers.Dense(CLASSES, name="head")(normed)
    return keras.Model([ids, mask], [logits, ops.softmax(logits, axis=-1)], name="textclf")
