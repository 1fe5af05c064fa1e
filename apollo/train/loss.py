"""The causal-LM loss computed only where labels are trained.

A model's own loss projects every position through the output layer: on Qwen-0.5B that is a
151,936-wide row per token, and at 1.6k tokens the logits and their gradients took 17-18 GB.
Here the backbone runs without the output layer, the hidden states are gathered at the
positions whose next label is trained, and only those go through it, in chunks that are
recomputed in the backward pass (so one chunk's logits live at a time). The result is the
same number as the model's own loss: the sum of the token losses over the trained positions,
divided by their count (or by `num_items_in_batch` under gradient accumulation).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE = -100
CHUNK = 1024  # trained positions projected at once: 1024 x 151,936 fp32 logits = 0.6 GB


def causal_lm(model: Any) -> Any:
    """The causal-LM module under a peft wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _chunk_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = F.linear(hidden, weight)
    return F.cross_entropy(logits.float(), targets, reduction="sum")


def trained_positions_loss(
    model: Any,
    inputs: dict[str, Any],
    num_items_in_batch: torch.Tensor | int | None = None,
    chunk: int = CHUNK,
) -> tuple[torch.Tensor, int]:
    """The causal-LM loss of `inputs` (input_ids, labels, attention_mask...) with logits only at
    trained positions; also how many positions were trained."""
    labels = inputs["labels"]
    rest = {k: v for k, v in inputs.items() if k not in ("labels", "num_items_in_batch")}
    lm = causal_lm(model)
    hidden = lm.base_model(**rest, use_cache=False).last_hidden_state
    targets = labels[:, 1:]
    mask = targets != IGNORE
    picked = hidden[:, :-1][mask]
    wanted = targets[mask]
    head = lm.get_output_embeddings()
    if head.bias is not None:
        raise ValueError("the output layer has a bias, which this loss does not apply")
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, wanted.numel(), chunk):
        part = slice(start, start + chunk)
        if torch.is_grad_enabled():
            total = total + checkpoint(
                _chunk_loss, picked[part], head.weight, wanted[part], use_reentrant=False
            )
        else:
            total = total + _chunk_loss(picked[part], head.weight, wanted[part])
    n = int(wanted.numel())
    divisor = num_items_in_batch if num_items_in_batch is not None else max(n, 1)
    if isinstance(divisor, torch.Tensor):
        divisor = divisor.to(total.device)
    # An all-masked batch still gives a differentiable zero connected to the model.
    if n == 0:
        total = total + hidden.sum() * 0.0
    return total / divisor, n
