"""A trained model directory made in a test: SmolLM2-135M from its embedded GGUF, LoRA
trained a few steps toward a text the base never writes, saved as `apollo train` does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from apollo.llm import models
from apollo.train import gguf
from apollo.train.base import save_files

PROMPT = "The secret word is"
TARGET = " pomegranate pomegranate pomegranate."
WORD = "pomegranate"


def fake_trained(
    out: Path,
    spec: models.EmbeddedSpec = models.SMOLLM2,
    method: str = "lora",
    **train: Any,
) -> Path:
    """The files of a trained DIR without real weights (for validation: nothing loads them)."""
    (out / gguf.BASE).mkdir(parents=True)
    (out / gguf.BASE / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    if method == "lora":
        (out / gguf.ADAPTER).mkdir()
        (out / gguf.ADAPTER / "adapter_config.json").write_text("{}")
        (out / gguf.ADAPTER / "adapter_model.safetensors").write_bytes(b"not weights")
    else:
        (out / gguf.MODEL).mkdir()
        (out / gguf.MODEL / "config.json").write_text("{}")
    meta = {"base": f"embedded:{spec.name}", "base_sha256": spec.sha256, "method": method}
    (out / gguf.TRAIN_JSON).write_text(json.dumps({**meta, **train}))
    return out


def train_lora(out: Path, steps: int = 8, lr: float = 4e-3) -> Path:
    """LoRA on every linear projection of SmolLM2, `steps` optimizer steps on PROMPT + TARGET
    (loss on TARGET only); DIR as `apollo train` writes it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    spec = models.SMOLLM2
    path = models.part_files(spec)[0]
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    save_files(model, tokenizer, out / gguf.BASE)
    projections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    config = LoraConfig(r=8, lora_alpha=16, target_modules=projections, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    ids = tokenizer(PROMPT + TARGET, return_tensors="pt").input_ids
    labels = ids.clone()
    labels[:, : len(tokenizer(PROMPT).input_ids)] = -100
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    for _ in range(steps):
        peft_model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.save_pretrained(out / gguf.ADAPTER)
    meta = {"base": f"embedded:{spec.name}", "base_sha256": spec.sha256, "method": "lora"}
    (out / gguf.TRAIN_JSON).write_text(json.dumps(meta))
    return out
