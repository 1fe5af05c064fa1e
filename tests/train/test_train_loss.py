"""The loss with logits only at trained positions is the model's own causal-LM loss: same
value and same gradients, with padding, masked spans, chunking and gradient accumulation."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from apollo.train.loss import trained_positions_loss

SMALL = {
    "vocab_size": 320,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def tiny(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "qwen2":  # untied output layer, like Qwen-0.5B from its GGUF
        return Qwen2ForCausalLM(Qwen2Config(**SMALL, tie_word_embeddings=False))
    return LlamaForCausalLM(LlamaConfig(**SMALL, tie_word_embeddings=True))  # SmolLM2's shape


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, SMALL["vocab_size"], (3, 24), generator=g)
    labels = ids.clone()
    labels[:, :6] = -100  # a prompt
    labels[0, 10:14] = -100  # a masked turn in the middle
    mask = torch.ones_like(ids)
    mask[2, 17:] = 0  # padding, its labels -100 as the collator makes them
    labels[2, 17:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return out


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
@pytest.mark.parametrize("chunk", [1024, 5])
def test_equals_the_models_own_loss_and_gradients(kind: str, chunk: int) -> None:
    model = tiny(kind)
    inputs = batch()
    reference = model(**inputs).loss
    reference.backward()
    want = grads(model)
    ours, trained = trained_positions_loss(model, inputs, chunk=chunk)
    ours.backward()
    got = grads(model)
    assert trained == int((inputs["labels"][:, 1:] != -100).sum())
    assert torch.allclose(ours, reference, rtol=1e-6, atol=1e-6)
    assert want.keys() == got.keys()
    for name in want:
        assert torch.allclose(got[name], want[name], rtol=1e-4, atol=1e-6), name


def test_divides_by_the_accumulated_batchs_tokens() -> None:
    model = tiny("qwen2")
    inputs = batch()
    n = 1000  # the trained tokens of every micro-batch of an optimizer step
    reference = model(**inputs, num_items_in_batch=n).loss
    ours, _ = trained_positions_loss(model, inputs, num_items_in_batch=torch.tensor(n))
    assert torch.allclose(ours, reference, rtol=1e-6)


def test_an_all_masked_batch_is_a_differentiable_zero() -> None:
    model = tiny("llama")
    inputs = batch()
    inputs["labels"][:] = -100
    loss, trained = trained_positions_loss(model, inputs)
    loss.backward()
    assert trained == 0 and loss.item() == 0.0
    assert all(p.grad is not None for p in model.parameters())


def test_under_peft_the_adapter_gets_the_gradients() -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny("qwen2"), LoraConfig(r=4, target_modules="all-linear"))
    inputs = batch()
    reference = model(**inputs).loss
    ours, _ = trained_positions_loss(model, inputs)
    assert torch.allclose(ours, reference, rtol=1e-6)
    ours.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert trained and all("lora_" in n for n in trained)
