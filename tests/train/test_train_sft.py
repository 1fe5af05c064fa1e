"""`apollo train` on the smallest embedded model (SmolLM2-135M from its GGUF), a few steps on
short samples: the loss falls on a repeated sample, DIR has the agreed layout, the adapter
loads back with peft and moves the logits, a resumed training continues its step count,
the top-blocks method trains only those, and an export of another tokenizer is refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from apollo import cli
from apollo.llm import models
from apollo.train import base as base_mod
from apollo.train.data import TrainError
from apollo.train.options import TrainOptions
from apollo.train.sft import train
from tests.train.data import CONVERSATIONS, sample, write_export, write_rows

pytestmark = pytest.mark.slow

FAST = {"grad_accum": 1, "max_length": 256, "lr": 2e-3, "save_steps": 2}


def opts(tmp_path: Path, data: Path, **kw: Any) -> TrainOptions:
    settings: dict[str, Any] = {
        "data": data,
        "out": tmp_path / "out",
        "base": "embedded:smollm2-135m",
        **FAST,
        **kw,
    }
    return TrainOptions(**settings)


def logits(model: Any, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


class Steps(TrainerCallback):  # type: ignore[misc]
    """Records the step numbers this session ran; raises KeyboardInterrupt after `stop_at`."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.seen: list[int] = []
        self.stop_at = stop_at

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seen.append(state.global_step)
        if state.global_step == self.stop_at:
            raise KeyboardInterrupt


def test_lora_on_a_repeated_sample(
    tmp_path: Path, fresh_base: base_mod.Base, loaded_base: base_mod.Base
) -> None:
    one = [sample(CONVERSATIONS[0], 0)]
    data = write_export(tmp_path / "data.jsonl", fresh_base.tokenizer, one)
    options = opts(tmp_path, data, max_steps=6)
    result = train(options, tmp_path / "models", base=fresh_base, command="apollo train ...")
    out, rec = result.out, result.record

    losses = [loss for _, loss in rec["losses"]]
    assert [s for s, _ in rec["losses"]] == [1, 2, 3, 4, 5, 6]
    assert losses[-1] < 0.5 * losses[0], losses

    names = {p.name for p in out.iterdir()}
    assert names == {"train.json", "adapter", "base", "checkpoints", "README.md", "loss.png"}
    assert {p.name for p in (out / "adapter").iterdir()} >= {
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    assert {p.name for p in (out / "base").iterdir()} >= {
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    config = json.loads((out / "base" / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str((out / "base").resolve())
    assert set(adapter_config["target_modules"]) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    }  # fmt: skip
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    saved = json.loads((out / "train.json").read_text())
    assert saved == rec
    assert saved["base"] == "embedded:smollm2-135m"
    assert saved["base_sha256"] == models.SMOLLM2.sha256
    assert saved["method"] == "lora" and saved["steps"] == 6
    assert saved["hyperparameters"]["lora_r"] == 16 and saved["hyperparameters"]["lr"] == 2e-3
    row = json.loads(data.read_text().splitlines()[0])
    assert saved["tokens"] == 6 * len(row["input_ids"])
    assert saved["data"]["path"] == str(data.resolve()) and saved["data"]["rows"] == 1
    assert saved["data"]["card_sha256"] and saved["tokens_per_s"] > 0 and saved["wall_s"] > 0
    assert saved["final_loss"] == losses[-1]
    card = (out / "README.md").read_text()
    assert "![training loss](loss.png)" in card and "## Data card" in card
    assert "tokens/s" in card and "| lora_r | 16 |" in card

    from peft import PeftModel

    reloaded = PeftModel.from_pretrained(copy.deepcopy(loaded_base.model), str(out / "adapter"))
    before = logits(loaded_base.model, row["input_ids"])
    after = logits(reloaded, row["input_ids"])
    assert not torch.allclose(before, after, atol=1e-3)
    # The trained targets became likelier.
    ids, labels = torch.tensor(row["input_ids"]), torch.tensor(row["labels"])
    at = (labels[1:] != -100).nonzero().flatten()

    def nll(lg: torch.Tensor) -> float:
        return float(torch.nn.functional.cross_entropy(lg[at], ids[at + 1]))

    assert nll(after) < nll(before)


def test_resume_continues_from_the_checkpoint(tmp_path: Path, loaded_base: base_mod.Base) -> None:
    data = write_export(tmp_path / "data.jsonl", loaded_base.tokenizer)  # 2 samples
    options = opts(tmp_path, data, epochs=2.0)  # 4 steps
    first = Steps(stop_at=3)
    base = base_mod.Base(
        loaded_base.spec, loaded_base.gguf, copy.deepcopy(loaded_base.model), loaded_base.tokenizer
    )
    with pytest.raises(KeyboardInterrupt):
        train(options, tmp_path / "models", base=base, callbacks=[first])
    assert first.seen == [1, 2, 3]
    assert not (options.out / "train.json").exists()
    assert (options.out / "checkpoints" / "checkpoint-2").is_dir()
    with pytest.raises(TrainError, match="unfinished training; pass --resume"):
        train(options, tmp_path / "models", base=base)

    second = Steps()
    base = base_mod.Base(
        loaded_base.spec, loaded_base.gguf, copy.deepcopy(loaded_base.model), loaded_base.tokenizer
    )
    result = train(options, tmp_path / "models", resume=True, base=base, callbacks=[second])
    assert second.seen == [3, 4]  # from the checkpoint at step 2, not from the start
    assert result.record["steps"] == 4
    assert [s for s, _ in result.record["losses"]] == [1, 2, 3, 4]
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert result.record["tokens"] == 2 * sum(len(r["input_ids"]) for r in rows)
    with pytest.raises(TrainError, match="holds a finished training; pass --force"):
        train(options, tmp_path / "models", base=base)


def test_full_top_layers(tmp_path: Path, fresh_base: base_mod.Base) -> None:
    data = write_export(tmp_path / "data.jsonl", fresh_base.tokenizer)
    bottom = fresh_base.model.model.layers[0].mlp.up_proj.weight.detach().clone()
    top = fresh_base.model.model.layers[-1].mlp.up_proj.weight.detach().clone()
    options = opts(tmp_path, data, top_layers=2, max_steps=2, lr=1e-4)
    result = train(options, tmp_path / "models", base=fresh_base)
    assert result.record["method"] == "top_layers"
    assert result.record["hyperparameters"]["top_layers"] == 2
    assert not (result.out / "adapter").exists()

    from transformers import AutoModelForCausalLM

    trained = AutoModelForCausalLM.from_pretrained(str(result.out / "model"))
    assert torch.equal(trained.model.layers[0].mlp.up_proj.weight, bottom)
    assert not torch.equal(trained.model.layers[-1].mlp.up_proj.weight, top)
    per_block = sum(p.numel() for p in trained.model.layers[0].parameters())
    assert result.record["trainable_parameters"] == 2 * per_block
    with pytest.raises(TrainError, match="has 30 blocks; give 1 to 30"):
        train(opts(tmp_path, data, top_layers=31, out=tmp_path / "o2"), tmp_path, base=fresh_base)


def test_refuses_an_export_of_another_tokenizer(tmp_path: Path, loaded_base: base_mod.Base) -> None:
    ours = write_export(tmp_path / "ours.jsonl", loaded_base.tokenizer)
    rows = [json.loads(line) for line in ours.read_text().splitlines()]
    # The same text under another vocabulary: every id moved.
    vocab = len(loaded_base.tokenizer)
    other = [
        {
            "input_ids": [(t + 7) % vocab for t in r["input_ids"]],
            "labels": [lb if lb == -100 else (lb + 7) % vocab for lb in r["labels"]],
        }
        for r in rows
    ]
    data = write_rows(tmp_path / "other.jsonl", other, source="tokenizer /x/qwen, chat template c")
    with pytest.raises(TrainError) as err:
        train(opts(tmp_path, data), tmp_path, base=loaded_base)
    message = str(err.value)
    assert "was tokenized by tokenizer /x/qwen" in message
    assert "export it again with `--format tokenized --tokenizer embedded:smollm2-135m`" in message


def test_cli_end_to_end(tmp_path: Path, loaded_base: base_mod.Base, capsys: Any) -> None:
    data = write_export(tmp_path / "data.jsonl", loaded_base.tokenizer)
    out = tmp_path / "trained"
    argv = ["train", "--home", str(tmp_path / "home"), "--data", str(data), "--out", str(out)]
    argv += ["--base", "embedded:smollm2-135m", "--max-steps", "1", "--max-length", "128"]
    assert cli.main(argv) == 0
    said = capsys.readouterr().out
    assert "trained embedded:smollm2-135m (lora) for 1 steps" in said and "tokens/s" in said
    assert json.loads((out / "train.json").read_text())["steps"] == 1
    assert cli.main(argv) == 2
    assert "holds a finished training; pass --force" in capsys.readouterr().err
