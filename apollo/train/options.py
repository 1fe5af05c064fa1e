"""The settings of one training, checked before anything is loaded; each error names its flag."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from apollo.train.data import TrainError

LORA = "lora"
TOP_LAYERS = "top_layers"
ALL_LINEAR = "all-linear"  # peft: every linear layer of the blocks, not the output layer
DEFAULT_LR = {LORA: 2e-4, TOP_LAYERS: 2e-5}
# What may differ when a training is resumed: how long it runs, how often it saves, and
# what it runs on.
RESUMABLE_CHANGES = ("epochs", "max_steps", "save_steps", "device", "threads")


@dataclass(frozen=True, slots=True)
class TrainOptions:
    """One training's settings (`apollo train` flags)."""

    data: Path
    out: Path
    base: str = "embedded"
    top_layers: int = 0  # > 0: full fine-tuning of the top N blocks instead of LoRA
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: str = ALL_LINEAR
    lr: float | None = None  # None: the method's default
    epochs: float = 3.0
    max_steps: int = -1  # > 0: stop after this many optimizer steps instead
    batch_size: int = 1
    grad_accum: int = 4
    max_length: int = 4096
    warmup_steps: int = 0
    save_steps: int = 50
    seed: int = 0
    precision: str = "bf16"
    gradient_checkpointing: bool = True
    device: str = "auto"
    threads: int = 0  # CPU threads; 0: the cores the load leaves idle (at least 1)

    @property
    def method(self) -> str:
        """`lora` or `top_layers`."""
        return TOP_LAYERS if self.top_layers else LORA

    @property
    def learning_rate(self) -> float:
        """The learning rate used."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    def check(self) -> None:
        """Raise a TrainError naming the first bad flag."""
        rules: list[tuple[bool, str]] = [
            (self.top_layers >= 0, "--full-top-layers must be 1 or more"),
            (self.lora_r >= 1, "--lora-r must be 1 or more"),
            (self.lora_alpha > 0, "--lora-alpha must be above 0"),
            (0 <= self.lora_dropout < 1, "--lora-dropout must be in [0, 1)"),
            (bool(self.lora_targets.strip(",")), "--lora-targets must name modules"),
            (self.lr is None or 0 < self.lr < 1, "--lr must be in (0, 1), e.g. 2e-4"),
            (self.epochs > 0, "--epochs must be above 0"),
            (self.max_steps == -1 or self.max_steps >= 1, "--max-steps must be 1 or more"),
            (self.batch_size >= 1, "--batch-size must be 1 or more"),
            (self.grad_accum >= 1, "--grad-accum must be 1 or more"),
            (self.max_length >= 16, "--max-length must be 16 tokens or more"),
            (self.warmup_steps >= 0, "--warmup-steps must be 0 or more"),
            (self.save_steps >= 1, "--save-steps must be 1 or more"),
            (self.precision in ("bf16", "fp32"), "--precision must be bf16 or fp32"),
            (self.device in ("auto", "cpu", "cuda"), "--device must be auto, cpu or cuda"),
            (self.threads >= 0, "--threads must be 1 or more (or 0: from the load)"),
        ]
        for ok, message in rules:
            if not ok:
                raise TrainError(message)

    def hyperparameters(self) -> dict[str, Any]:
        """What train.json and the model card record (the method's own settings only)."""
        out = {
            "lr": self.learning_rate,
            "epochs": self.epochs,
            "max_steps": self.max_steps,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "max_length": self.max_length,
            "warmup_steps": self.warmup_steps,
            "save_steps": self.save_steps,
            "seed": self.seed,
            "precision": self.precision,
            "gradient_checkpointing": self.gradient_checkpointing,
        }
        if self.method == LORA:
            out |= {
                "lora_r": self.lora_r,
                "lora_alpha": self.lora_alpha,
                "lora_dropout": self.lora_dropout,
                "lora_targets": self.lora_targets,
            }
        else:
            out["top_layers"] = self.top_layers
        return out

    def to_json(self) -> dict[str, Any]:
        """Every setting, for the record a resume is checked against."""
        out = asdict(self)
        out["data"], out["out"] = str(self.data.resolve()), str(self.out.resolve())
        return out

    def resume_conflicts(self, saved: dict[str, Any]) -> list[str]:
        """The settings that differ from those the interrupted training started with."""
        now = self.to_json()
        return [
            key
            for key, value in now.items()
            if key not in RESUMABLE_CHANGES and saved.get(key) != value
        ]
