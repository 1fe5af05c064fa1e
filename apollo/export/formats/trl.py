"""TRL conversational: `messages` + `tools`, tool-call `arguments` as objects.

TRL itself has no per-message weight. Assistant messages carry `weight` (0 or 1): Apollo's
ChatML tool template (apollo/export/templates/chatml_tools.jinja) wraps only weight-1 turns in
`{% generation %}`, so `SFTConfig(assistant_only_loss=True)` with that template trains exactly
the kept turns; with any other template use the `tokenized` format.

`tools` is JSON text, which TRL decodes: as a list, a datasets (Arrow) table would merge every
tool's schema into one and fill the gaps with nulls, changing the rendered prompt.
"""

from __future__ import annotations

import json
from typing import Any

from apollo.export.formats import Estimated, marked_messages
from apollo.export.windows import Sample


class TRL(Estimated):
    name = "trl"

    def encode(self, sample: Sample) -> dict[str, Any]:
        messages = marked_messages(sample, lambda w: {} if w is None else {"weight": w})
        return {"messages": messages, "tools": json.dumps(sample.tools, ensure_ascii=False)}
