"""OpenAI chat fine-tuning JSONL: `weight` (0 or 1) on every assistant message, `arguments`
as the JSON text the model wrote, tool results paired by `tool_call_id`."""

from __future__ import annotations

from typing import Any

from apollo.export.formats import Estimated
from apollo.export.windows import Sample


class OpenAI(Estimated):
    name = "openai"

    def encode(self, sample: Sample) -> dict[str, Any]:
        messages = [
            m if w is None else {**m, "weight": w}
            for m, w in zip(sample.messages, sample.weights, strict=True)
        ]
        return {"messages": messages, "tools": sample.tools, "parallel_tool_calls": False}

    def encode_line(self, sample: Sample) -> tuple[str, dict[str, Any] | None]:
        """The same record spliced from the stored JSON texts: no decode, no re-encode (the
        export's hot path). A stored message is a JSON object, so a weight goes before its
        closing brace."""
        parts = [
            t if w is None else f'{t[:-1]},"weight":{w}}}'
            for t, w in zip(sample.texts, sample.weights, strict=True)
        ]
        line = (
            '{"messages":['
            + ",".join(parts)
            + '],"tools":'
            + sample.tools_text
            + ',"parallel_tool_calls":false}'
        )
        return line, None
