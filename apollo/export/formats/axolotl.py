"""axolotl `chat_template` datasets: a boolean `train` on every message (set
`message_field_training: train` in the dataset config); tool-call arguments as objects."""

from __future__ import annotations

from typing import Any

from apollo.export.formats import Estimated, with_dict_arguments
from apollo.export.windows import Sample

TRAIN_FIELD = "train"


class Axolotl(Estimated):
    name = "axolotl"

    def encode(self, sample: Sample) -> dict[str, Any]:
        messages = []
        for m, w in zip(sample.messages, sample.weights, strict=True):
            out = with_dict_arguments(m)
            out[TRAIN_FIELD] = w == 1
            messages.append(out)
        return {"messages": messages, "tools": sample.tools}
