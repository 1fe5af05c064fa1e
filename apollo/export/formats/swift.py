"""ms-swift agent format: roles system / user / assistant / tool_call / tool_response, a
per-message `"loss": true|false` on the assistant side, `tools` as JSON text.

An assistant turn becomes its text (an `assistant` message, when it has any) followed by one
`tool_call` message per call; both carry the turn's loss flag.
"""

from __future__ import annotations

import json
from typing import Any

from apollo.export.formats import Estimated, arguments_dict
from apollo.export.windows import Sample


class Swift(Estimated):
    name = "swift"

    def encode(self, sample: Sample) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for m, w in zip(sample.messages, sample.weights, strict=True):
            role = m.get("role")
            if role == "assistant":
                loss = w == 1
                if m.get("content") or not m.get("tool_calls"):
                    messages.append(
                        {"role": "assistant", "content": m.get("content") or "", "loss": loss}
                    )
                for tc in m.get("tool_calls") or []:
                    call = {
                        "name": tc["function"]["name"],
                        "arguments": arguments_dict(tc["function"]["arguments"]),
                    }
                    messages.append(
                        {
                            "role": "tool_call",
                            "content": json.dumps(call, ensure_ascii=False),
                            "loss": loss,
                        }
                    )
            elif role == "tool":
                messages.append({"role": "tool_response", "content": m.get("content") or ""})
            else:
                messages.append({"role": role, "content": m.get("content") or ""})
        return {"messages": messages, "tools": json.dumps(sample.tools, ensure_ascii=False)}
