"""axolotl `chat_template` datasets: a boolean `train` on every message (set
`message_field_training: train` in the dataset config); tool-call arguments as objects."""

from __future__ import annotations

from typing import Any

from apollo.export.formats import Estimated, marked_messages
from apollo.export.windows import Sample

TRAIN_FIELD = "train"


class Axolotl(Estimated):
    name = "axolotl"

    def encode(self, sample: Sample) -> dict[str, Any]:
        messages = marked_messages(sample, lambda w: {TRAIN_FIELD: w == 1})
        return {"messages": messages, "tools": sample.tools}
