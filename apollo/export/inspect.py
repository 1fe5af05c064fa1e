"""Show a sample the way training will see it: trained turns, masked turns (with why) and
context, distinct with or without colour, so a person can check masks before training.

What the agent and people wrote is made terminal-safe (`apollo.terminal.safe`) before the
colours are added, so only these colours reach the terminal."""

from __future__ import annotations

import json
from typing import Any

from apollo.export.windows import Sample
from apollo.terminal import safe

_GREEN, _RED, _DIM, _RESET = "\033[32m", "\033[31m", "\033[2m", "\033[0m"
TRAIN_MARK, MASK_MARK, CONTEXT_MARK = "+", "-", " "


def _body(m: dict[str, Any]) -> str:
    parts = []
    if m.get("reasoning_content"):
        parts.append(f"(reasoning) {m['reasoning_content']}")
    if m.get("content"):
        parts.append(str(m["content"]))
    for tc in m.get("tool_calls") or []:
        parts.append(f"-> {tc['function']['name']}({tc['function']['arguments']})  [{tc['id']}]")
    if m.get("tool_call_id"):
        parts.insert(0, f"[result of {m['tool_call_id']}]")
    return "\n".join(parts) or "(empty)"


def render_sample(sample: Sample, color: bool = False, width: int = 2000) -> str:
    """Every message of the sample; lines of trained turns start with '+', of masked turns
    with '-', of context with ' '."""
    out = [
        safe(
            f"sample {sample.index} of run {sample.run_id} ({sample.task}, {sample.kind}): "
            f"{len(sample.messages)} messages, {len(sample.trained())} trained, "
            f"{len(sample.masked())} assistant turns masked or context"
        )
    ]
    for i, (m, w, step) in enumerate(
        zip(sample.messages, sample.weights, sample.steps, strict=True)
    ):
        role = m.get("role", "?")
        if w == 1:
            mark, tint = TRAIN_MARK, _GREEN
            head = f"#{i} {role} step {step} TRAINED" if step else f"#{i} {role} TRAINED"
        elif w == 0 and step is not None:
            mark, tint = MASK_MARK, _RED
            d = sample.decisions.get(step)
            why = f" ({d.reason})" if d else ""
            head = f"#{i} {role} step {step} MASKED{why}"
        else:
            mark, tint = CONTEXT_MARK, _DIM
            head = f"#{i} {role} context"
        text = _body(m)
        if len(text) > width:
            text = (
                text[: width // 2]
                + f"\n[... {len(text) - width} characters ...]\n"
                + text[-width // 2 :]
            )
        lines = [f"{mark} == {head} =="] + [f"{mark} {line}" for line in text.splitlines()]
        block = safe("\n".join(lines), lines=True)
        out.append(f"{tint}{block}{_RESET}" if color else block)
    return "\n".join(out)


def render_tokens(record: dict[str, Any], tokenizer: Any, color: bool = False) -> str:
    """A tokenized record: trained token spans in ⟦ ⟧ (and green), the rest as it is."""
    ids, labels = record["input_ids"], record["labels"]
    out: list[str] = []
    k = 0
    while k < len(ids):
        trained = labels[k] != -100
        j = k
        while j < len(ids) and (labels[j] != -100) == trained:
            j += 1
        text = safe(tokenizer.decode(ids[k:j]), lines=True)
        if trained:
            out.append(f"{_GREEN}⟦{text}⟧{_RESET}" if color else f"⟦{text}⟧")
        else:
            out.append(text)
        k = j
    n = sum(1 for x in labels if x != -100)
    return f"{n} of {len(ids)} tokens trained (inside ⟦ ⟧)\n" + "".join(out)


def record_json(record: dict[str, Any]) -> str:
    """The exported line itself, pretty-printed (JSON escapes C0 controls; the rest of what
    could steer a terminal is escaped too)."""
    return safe(json.dumps(record, ensure_ascii=False, indent=2), lines=True)
