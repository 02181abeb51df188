"""Attention layers with the reference's parameter names, computed with ``scaled_dot_product_attention``.

Checkpoint compatibility fixes the parameter *names* (those of the released ``unet_all.pth``, defined in
the authors' ``unet/unet_conditional.py``; book/reference_implementation.md#blocks-and-attention):

* :class:`MultiheadAttention` holds ``in_proj_weight`` (3E, E), ``in_proj_bias`` (3E) and ``out_proj``
  (Linear E->E) exactly like :class:`torch.nn.MultiheadAttention` (batch_first, separate q/k/v inputs),
  so ``...attention.in_proj_weight`` etc. load from the released U-Net. The product itself goes through
  :func:`torch.nn.functional.scaled_dot_product_attention` (fused/flash kernels on GPU, no attention
  weights materialised). ``nn.MultiheadAttention`` in the reference takes the explicit
  ``softmax(QK^T/sqrt(d)) V`` path; the two differ by float rounding only (~1e-6 on the golden output).
* :class:`SelfAttention` / :class:`CrossAttention` are the U-Net's attention sub-blocks (``to_q``, ``to_k``,
  ``to_v``, ``to_out``, ``attention``, ``norm`` / ``normalization``, ``value_combiner``,
  ``condition_normalization``), registered in the reference's order so ``state_dict()`` lists keys in the
  same order as the released checkpoint.
* :class:`FusedSelfAttention` is the VAE's single-projection attention (``in_proj``/``out_proj`` Linear).

Cross-attention over one repeated condition token
-------------------------------------------------
The reference builds one condition vector per sample, repeats it to L tokens and attends to it. All
keys are identical, so every softmax row is uniform (1/L) and every value is identical: the attention
output is the projected value ``out_proj(W_v v + b_v)`` at every query position, independent of the
query. The block is therefore a per-sample, position-independent additive bias and the query/key branch
(``to_q``, ``to_k``, ``normalization``, the q/k thirds of ``in_proj``) has no influence on the output (its
gradient is zero up to rounding in the reference too). :class:`CrossAttention` computes that bias directly
(``impl="bias"``, default, O(1) in L) or runs the literal attention over the repeated tokens
(``impl="full"``). Both reproduce the reference's golden output within the fixture tolerance
(tests/test_reference_golden.py records the errors).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiheadAttention", "SelfAttention", "CrossAttention", "FusedSelfAttention"]


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)`` look-alike using SDPA.

    Same parameters (``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``) and the
    same initialisation (xavier-uniform in-projection, zero biases). Inputs are (B, L, E).
    """

    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _proj(self, x: torch.Tensor, i: int) -> torch.Tensor:
        e = self.embed_dim
        return F.linear(x, self.in_proj_weight[i * e : (i + 1) * e], self.in_proj_bias[i * e : (i + 1) * e])

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        b, n, _ = query.shape
        if query is key and key is value:  # one fused GEMM for self-attention
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            q, k, v = self._proj(query, 0), self._proj(key, 1), self._proj(value, 2)
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(k), self._heads(v))
        out = out.transpose(1, 2).reshape(b, n, self.embed_dim)
        return self.out_proj(out)

    def forward_identical_tokens(self, value_token: torch.Tensor) -> torch.Tensor:
        """Output for keys/values that are all the same token ``value_token`` (B, E): the softmax is uniform,
        so the result is ``out_proj(v)`` for every query. Returns (B, E)."""
        return self.out_proj(self._proj(value_token, 2))


class SelfAttention(nn.Module):
    """U-Net self-attention over time: LayerNorm -> to_q/to_k/to_v -> MHA -> to_out -> + input.

    Input and output (B, L, ch); ``hidden`` is the attention width (``heads`` heads)."""

    def __init__(self, ch: int, hidden: int, heads: int):
        super().__init__()
        self.to_q = nn.Linear(ch, hidden)
        self.to_k = nn.Linear(ch, hidden)
        self.to_v = nn.Linear(ch, hidden)
        self.to_out = nn.Linear(hidden, ch)
        self.attention = MultiheadAttention(hidden, heads)
        self.norm = nn.LayerNorm(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        h = self.attention(self.to_q(h), self.to_k(h), self.to_v(h))
        return x + self.to_out(h)


class CrossAttention(nn.Module):
    """U-Net "cross-attention" to the condition vector ``[text, patient]`` (the authors' ``unet/unet_conditional.py``;
    book/reference_implementation.md#u-net-conditioning).

    ``cond`` is (B, cond_in) (``cond_in = text_dim + n_patient``); ``value_combiner`` maps it to ``ch``; it
    is conceptually repeated over the L positions, layer-normed and used as keys and values.

    ``impl``:
      * ``"bias"`` (default): the exact closed form: ``x + to_out(out_proj(W_v to_v(LN(vc(cond)))))`` added at
        every position (see module docstring). The query/key branch is not evaluated and gets no gradient.
      * ``"full"``: the literal reference computation (queries from ``LN(x)``, L repeated key/value tokens).
    """

    def __init__(self, ch: int, hidden: int, heads: int, cond_in: int, impl: str = "bias"):
        super().__init__()
        if impl not in ("bias", "full"):
            raise ValueError(f"cross-attention impl must be 'bias' or 'full', got {impl!r}")
        self.impl = impl
        self.to_q = nn.Linear(ch, hidden)
        self.to_k = nn.Linear(ch, hidden)
        self.to_v = nn.Linear(ch, hidden)
        self.to_out = nn.Linear(hidden, ch)
        self.attention = MultiheadAttention(hidden, heads)
        self.normalization = nn.LayerNorm(ch)
        self.value_combiner = nn.Linear(cond_in, ch)
        self.condition_normalization = nn.LayerNorm(ch)

    def condition_bias(self, cond: torch.Tensor) -> torch.Tensor:
        """The position-independent term this block adds, (B, ch)."""
        c = self.condition_normalization(self.value_combiner(cond))
        return self.to_out(self.attention.forward_identical_tokens(self.to_v(c)))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if self.impl == "bias":
            return x + self.condition_bias(cond)[:, None, :]
        n = x.shape[1]
        c = self.value_combiner(cond)[:, None, :].expand(-1, n, -1)
        c = self.condition_normalization(c)
        q = self.to_q(self.normalization(x))
        h = self.attention(q, self.to_k(c), self.to_v(c))
        return x + self.to_out(h)


class FusedSelfAttention(nn.Module):
    """Stable-Diffusion-VAE style self-attention: ``in_proj`` (Linear C->3C), SDPA, ``out_proj`` (C->C).

    Input/output (B, L, C). With one head the scale is 1/sqrt(C), as in the reference."""

    def __init__(self, channels: int, heads: int = 1):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        self.heads = heads
        self.in_proj = nn.Linear(channels, 3 * channels)
        self.out_proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        d = c // self.heads
        q, k, v = (t.view(b, n, self.heads, d).transpose(1, 2) for t in self.in_proj(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0 / math.sqrt(d))
        return self.out_proj(out.transpose(1, 2).reshape(b, n, c))
