"""LLaMA-Factory ShareGPT: `conversations` of human / gpt / function_call / observation in
strict alternation, `system`, `tools` as JSON text, and LLaMA-Factory v1's per-message
`loss_weight` on the assistant side.

Alternation forces merges: a guidance turn after a tool result joins that observation (as the
model saw it: result, then guidance), consecutive user turns join into one human turn, and the
results of several calls of one turn join into one observation. A `function_call` holds only
the call(s) as JSON; text the assistant wrote beside a call has no place in it and is dropped
(the card counts such turns).
"""

from __future__ import annotations

import json
from typing import Any

from apollo.export.formats import Estimated, arguments_dict
from apollo.export.windows import ExportError, Sample

_USER_SIDE = ("human", "observation")
SEPARATOR = "\n\n"


class ShareGPT(Estimated):
    name = "sharegpt"

    def __init__(self) -> None:
        self.dropped_text = 0  # assistant turns whose text beside a call was dropped

    def encode(self, sample: Sample) -> dict[str, Any]:
        msgs = sample.messages
        system = ""
        start = 0
        if msgs and msgs[0].get("role") == "system":
            system, start = msgs[0].get("content") or "", 1
        conv: list[dict[str, Any]] = []
        for m, w in zip(msgs[start:], sample.weights[start:], strict=True):
            role = m.get("role")
            if role == "assistant":
                conv.append(self._assistant(m, w))
                continue
            side = "observation" if role == "tool" else "human"
            text = m.get("content") or ""
            if conv and conv[-1]["from"] in _USER_SIDE:
                prev = conv[-1]
                prev["value"] += SEPARATOR + text
                if side == "observation":
                    prev["from"] = "observation"
            else:
                conv.append({"from": side, "value": text})
        for i, turn in enumerate(conv):
            user_side = turn["from"] in _USER_SIDE
            if user_side != (i % 2 == 0):
                raise ExportError(
                    f"run {sample.run_id} window {sample.index}: ShareGPT turns do not alternate "
                    f"at turn {i} ({turn['from']})"
                )
        return {
            "conversations": conv,
            "system": system,
            "tools": json.dumps(sample.tools, ensure_ascii=False),
        }

    def _assistant(self, m: dict[str, Any], w: int | None) -> dict[str, Any]:
        calls = m.get("tool_calls") or []
        if calls:
            items = [
                {
                    "name": tc["function"]["name"],
                    "arguments": arguments_dict(tc["function"]["arguments"]),
                }
                for tc in calls
            ]
            if m.get("content"):
                self.dropped_text += 1
            value = json.dumps(items[0] if len(items) == 1 else items, ensure_ascii=False)
            turn: dict[str, Any] = {"from": "function_call", "value": value}
        else:
            turn = {"from": "gpt", "value": m.get("content") or ""}
        turn["loss_weight"] = float(w or 0)
        return turn
