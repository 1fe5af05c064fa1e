"""The base model of a training: an embedded GGUF (apollo/llm/models.py), loaded by
transformers with `gguf_file=` (its weights dequantized to fp32), with its tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apollo.llm import models
from apollo.llm.models import EmbeddedSpec
from apollo.train.data import ExportData, TrainError


@dataclass
class Base:
    """A loaded base: its registry entry, the checked GGUF, the model and the tokenizer."""

    spec: EmbeddedSpec
    gguf: Path
    model: Any
    tokenizer: Any

    @property
    def name(self) -> str:
        """`embedded:NAME`, as train.json records it."""
        return f"{models.EMBEDDED}:{self.spec.name}"


def resolve(value: str) -> EmbeddedSpec:
    """The embedded model `--base` names (`embedded` is the default one)."""
    spec = models.parse(value)  # an unknown NAME is an EmbeddedError listing the known ones
    if spec is None:
        raise TrainError(
            f"--base {value!r}: give `embedded` or `embedded:NAME`, one of "
            f"{', '.join(models.MODELS)} (see `apollo models`)"
        )
    if spec.trained is not None:
        raise TrainError(
            f"--base {value!r}: training starts from an embedded model's own weights; give "
            f"--base embedded:{spec.name} (continuing a trained DIR is not supported)"
        )
    return spec


def tokenizer_flag(spec: EmbeddedSpec) -> str:
    """The `apollo export --tokenizer` value that tokenizes for `spec`."""
    return f"{models.EMBEDDED}:{spec.name}"


def unquantize(model: Any) -> None:
    """Forget that the model came from a GGUF: its weights are plain fp32 tensors by now, but
    `save_pretrained` (and the Trainer) refuse a model with a quantizer attached."""
    if getattr(model, "hf_quantizer", None) is not None:
        del model.hf_quantizer
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if getattr(model, "is_quantized", False):
        model.is_quantized = False
    if not getattr(model.config, "architectures", None):
        model.config.architectures = [type(model).__name__]


def load(spec: EmbeddedSpec, cache: Path, data: ExportData | None = None) -> Base:
    """Check (and assemble) `spec`'s GGUF, then load its tokenizer and model; with `data`, the
    export is checked against the tokenizer before the (slower) model is loaded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = models.ensure(spec, cache)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if data is not None:
        check_tokenizer(data, tokenizer, spec)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    unquantize(model)
    return Base(spec, gguf, model, tokenizer)


def check_tokenizer(data: ExportData, tok: Any, spec: EmbeddedSpec) -> None:
    """Refuse an export tokenized by another tokenizer than `spec`'s (`tok`): its first sample
    must decode and encode back to the same ids with it."""
    ids = list(data.first_ids)
    same = max(ids) < len(tok)
    if same:
        text = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        same = tok(text, add_special_tokens=False)["input_ids"] == ids
    if not same:
        raise TrainError(
            f"{data.path} was tokenized by {data.tokenizer}, not by the tokenizer of "
            f"{models.EMBEDDED}:{spec.name}: export it again with `--format tokenized "
            f"--tokenizer {tokenizer_flag(spec)}`"
        )


def save_files(model: Any, tokenizer: Any, dest: Path) -> None:
    """The base's config.json and tokenizer files into `dest`: what a converter of the adapter
    (llama.cpp's convert_lora_to_gguf.py `--base`) needs besides the adapter. `model` is a
    transformers model loaded from an embedded GGUF; its config gets what `unquantize` gives
    (the `architectures` the converter detects the model by, no quantizer)."""
    unquantize(model)
    dest.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(str(dest))
    tokenizer.save_pretrained(str(dest))
