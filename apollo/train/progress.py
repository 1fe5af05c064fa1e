"""The training's live progress bar (rich), and the time it keeps across resumes.

Each logged step gets `train_s` in the trainer's log history: the training seconds so far,
summed over every session of a resumed training (the history is saved in each checkpoint), so
the model card's wall time and tokens/s cover the whole training."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback


class TrainProgress(TrainerCallback):
    """A rich progress bar of optimizer steps, with the last loss and tokens/s."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(file=sys.stderr)
        self.progress: Progress | None = None
        self.task: Any = None
        self.started = 0.0
        self.prior_s = 0.0  # training seconds of earlier sessions (a resumed training)
        self.first_tokens = 0
        self.loss: float | None = None

    def elapsed(self) -> float:
        """Training seconds in this session."""
        return time.monotonic() - self.started if self.started else 0.0

    def tokens_per_s(self, state: Any) -> float:
        """Input tokens per second of this session."""
        seconds = self.elapsed()
        return (state.num_input_tokens_seen - self.first_tokens) / seconds if seconds else 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.prior_s = next(
            (e["train_s"] for e in reversed(state.log_history) if "train_s" in e), 0.0
        )
        self.first_tokens = state.num_input_tokens_seen
        self.started = time.monotonic()
        self.progress = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("steps  loss {task.fields[loss]}  {task.fields[tok_s]} tok/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, loss="-", tok_s="-"
        )
        self.progress.start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task,
                completed=state.global_step,
                tok_s=f"{self.tokens_per_s(state):.0f}",
                loss="-" if self.loss is None else f"{self.loss:.4f}",
            )

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])
        if state.log_history:
            entry = state.log_history[-1]
            entry["train_s"] = round(self.prior_s + self.elapsed(), 3)
            entry.setdefault("num_input_tokens_seen", state.num_input_tokens_seen)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop the bar (also when training fails)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
