"""Every format: trained messages (or tokens) are exactly the kept assistant turns, tool-call
ids pair, and TRL's SFT data preparation takes the `trl` and `tokenized` output unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apollo.export.formats import get_format
from apollo.export.formats.tokenized import IGNORE, Tokenized, apollo_template
from apollo.export.windows import Sample, WindowOptions, run_samples
from apollo.supervise.policy import Policy
from tests.agent.harness import Outcome
from tests.export.conftest import kept_steps


def windows(out: Outcome) -> list[Sample]:
    run = out.store.get_run(out.run_id)
    assert run is not None
    return list(run_samples(out.store, run, Policy(), WindowOptions()))


def kept_outputs(sample: Sample) -> list[dict[str, Any]]:
    return [m for m, w in zip(sample.messages, sample.weights, strict=True) if w == 1]


def test_openai_weights_and_tool_pairs(summarized: Outcome) -> None:
    fmt = get_format("openai")
    trained_steps = set()
    for sample in windows(summarized):
        rec = json.loads(json.dumps(fmt.encode(sample)))
        assert set(rec) == {"messages", "tools", "parallel_tool_calls"}
        assert rec["parallel_tool_calls"] is False and rec["tools"]
        open_calls: set[str] = set()
        for m, step in zip(rec["messages"], sample.steps, strict=True):
            assert ("weight" in m) == (m["role"] == "assistant")
            if m.get("weight") == 1:
                trained_steps.add(step)
            for tc in m.get("tool_calls") or []:
                assert isinstance(tc["function"]["arguments"], str) and tc["type"] == "function"
                open_calls.add(tc["id"])
            if m["role"] == "tool":
                open_calls.remove(m["tool_call_id"])  # every result answers an earlier call
        assert len(open_calls) <= 1  # only the window's final turn awaits its result
        assert [m for m in rec["messages"] if m.get("weight") == 1] == [
            {**m, "weight": 1} for m in kept_outputs(sample)
        ]
    assert trained_steps == kept_steps(summarized)


@pytest.mark.parametrize(
    ("name", "flag"), [("trl", "weight"), ("axolotl", "train"), ("swift", "loss")]
)
def test_message_flag_formats(summarized: Outcome, name: str, flag: str) -> None:
    fmt = get_format(name)
    trained = 0
    for sample in windows(summarized):
        rec = fmt.encode(sample)
        msgs = rec["messages"]
        if name == "swift":
            assert isinstance(rec["tools"], str)
            on = [m for m in msgs if m.get("loss")]
            turns = {json.loads(m["content"])["name"] for m in on if m["role"] == "tool_call"}
            expected = {
                m["tool_calls"][0]["function"]["name"]
                for m in kept_outputs(sample)
                if m.get("tool_calls")
            }
            assert turns == expected
            assert all(m["role"] in ("assistant", "tool_call") for m in on)
            trained += sum(1 for m in on if m["role"] == "tool_call" or m["content"] != "")
            continue
        on = [m for m in msgs if m.get(flag) in (1, True)]
        assert all(m["role"] == "assistant" for m in on)
        assert len(on) == len(kept_outputs(sample))
        trained += len(on)
        for m in msgs:
            for tc in m.get("tool_calls") or []:
                assert isinstance(tc["function"]["arguments"], dict)
    assert trained >= len(kept_steps(summarized))


def test_sharegpt_alternates_and_merges_guidance(summarized: Outcome) -> None:
    fmt = get_format("sharegpt")
    for sample in windows(summarized):
        rec = fmt.encode(sample)
        conv = rec["conversations"]
        assert rec["system"] and json.loads(rec["tools"])
        for i, turn in enumerate(conv):
            assert (turn["from"] in ("human", "observation")) == (i % 2 == 0)
        weights = [t["loss_weight"] for t in conv if "loss_weight" in t]
        assert weights == [float(w) for w in sample.weights[1:] if w is not None]
        for t in conv:
            if "<real_user>" in t["value"] and t["from"] == "observation":
                # merged after the tool result, in the order the model saw them
                assert t["value"].index("[step") < t["value"].index("<real_user>")


def test_tokenized_masks_exactly_the_kept_turns(summarized: Outcome, tokenizer: Any) -> None:
    fmt = Tokenized(tokenizer)
    assert "apollo chatml_tools" in fmt.template_name  # SmolLM2's own drops tool calls
    for sample in windows(summarized):
        rec = fmt.encode(sample)
        ids, labels = rec["input_ids"], rec["labels"]
        reference = tokenizer.apply_chat_template(
            sample.messages,
            tools=sample.tools,
            chat_template=apollo_template(),
            tokenize=True,
            return_dict=False,
        )
        assert ids == list(reference)
        assert all(lab in (IGNORE, i) for i, lab in zip(ids, labels, strict=True))
        # The trained spans, decoded, are the kept turns as the template renders them.
        spans, k = [], 0
        while k < len(labels):
            if labels[k] == IGNORE:
                k += 1
                continue
            j = k
            while j < len(labels) and labels[j] != IGNORE:
                j += 1
            spans.append(tokenizer.decode(ids[k:j]))
            k = j
        kept = kept_outputs(sample)
        assert len(spans) == len(kept)
        for span, m in zip(spans, kept, strict=True):
            assert span.endswith("<|im_end|>") and not span.startswith("<|im_start|>")
            for tc in m.get("tool_calls") or []:
                assert tc["function"]["arguments"] in span
        trained, masked = fmt.tokens(sample, rec)
        assert trained == sum(1 for x in labels if x != IGNORE)
        assert (masked > 0) == any(
            w == 0 and s for w, s in zip(sample.weights, sample.steps, strict=True)
        )


def test_trl_data_preparation_accepts_trl_and_tokenized(
    summarized: Outcome, tokenizer: Any, tmp_path: Any
) -> None:
    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    tokenizer.chat_template = apollo_template()
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=8192,
        )
    )
    samples = windows(summarized)
    tok_fmt = Tokenized(tokenizer, "apollo")
    tokenized = [tok_fmt.encode(s) for s in samples]
    trl_rows = [get_format("trl").encode(s) for s in samples]
    for s in samples:  # the windows hold no reasoning text the template would drop
        assert not any(m.get("reasoning_content") for m in s.messages)

    def config(**kw: Any) -> SFTConfig:
        return SFTConfig(
            output_dir=str(tmp_path), max_length=None, report_to=[], bf16=False, use_cpu=True, **kw
        )

    trainer = SFTTrainer(
        model=model,
        args=config(),
        train_dataset=Dataset.from_list(tokenized),
        processing_class=tokenizer,
    )
    prepared = trainer.train_dataset
    assert isinstance(prepared, Dataset)
    assert prepared["input_ids"] == [r["input_ids"] for r in tokenized]
    assert prepared["labels"] == [r["labels"] for r in tokenized]

    conv = SFTTrainer(
        model=model,
        args=config(assistant_only_loss=True),
        train_dataset=Dataset.from_list(trl_rows),
        processing_class=tokenizer,
    ).train_dataset
    assert isinstance(conv, Dataset)
    for row, tok in zip(conv, tokenized, strict=True):
        # TRL renders the same tokens and, through the template's generation blocks, trains
        # exactly the tokens the tokenized format trains.
        assert row["input_ids"] == tok["input_ids"]
        assert row["labels"] == tok["labels"]
