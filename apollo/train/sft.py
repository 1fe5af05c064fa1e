"""`apollo train`'s work: supervised fine-tuning with TRL's SFTTrainer on a tokenized export.

The base comes from an embedded GGUF (apollo/train/base.py). LoRA (peft) on every linear layer
of the blocks, or full fine-tuning of the top N blocks with the rest frozen. The loss projects
only the trained positions through the output layer (apollo/train/loss.py); bf16 autocast and
gradient checkpointing by default (measured on Qwen-0.5B, 2 cores: 161 tokens/s, 6.2 GB at 3k
tokens). DIR's layout is a contract with the converter and server of adapters:

    DIR/train.json     what was trained, how, on what, how fast (written last: a finished DIR)
    DIR/adapter/       LoRA: peft's save_pretrained
    DIR/model/         top layers: the whole model's save_pretrained
    DIR/base/          the base's config.json and tokenizer files
    DIR/checkpoints/   the trainer's checkpoints (and the settings a resume is checked against)
    DIR/README.md      the model card, with DIR/loss.png
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apollo.train import base as base_mod
from apollo.train.card import loss_points, plot_loss, render
from apollo.train.data import ExportData, TrainError, read_export, rows
from apollo.train.options import LORA, TrainOptions

OPTIONS_FILE = "apollo-train-options.json"  # in DIR/checkpoints
OUTPUTS = ("train.json", "adapter", "model", "base", "checkpoints", "README.md", "loss.png")


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A finished training: its DIR and what train.json says."""

    out: Path
    record: dict[str, Any]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def latest_checkpoint(out: Path) -> Path | None:
    """The newest `checkpoint-N` folder under DIR/checkpoints, or None."""
    found = [
        p
        for p in (out / "checkpoints").glob("checkpoint-*")
        if p.is_dir() and p.name.split("-")[-1].isdigit()
    ]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


def prepare_out(options: TrainOptions, resume: bool, force: bool, data_sha256: str) -> Path | None:
    """Check DIR against what was asked (and, on resume, the export against the one the
    training started on) and make it ready; the checkpoint to resume from."""
    out = options.out
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} is a file; give a folder (new, or one to --resume)")
    saved_path = out / "checkpoints" / OPTIONS_FILE
    if resume:
        checkpoint = latest_checkpoint(out)
        if checkpoint is None or not saved_path.is_file():
            raise TrainError(f"nothing to resume in {out}: no checkpoint; drop --resume")
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        conflicts = options.resume_conflicts(saved)
        if conflicts:
            said = ", ".join(f"{k}={saved.get(k)!r}" for k in conflicts)
            raise TrainError(
                f"{out} was started with {said}; resume with the same settings (only "
                "--epochs, --max-steps, --save-steps, --device and --threads may change), or "
                "--force to start over"
            )
        if saved.get("data_sha256") != data_sha256:
            raise TrainError(
                f"{options.data} changed since the training in {out} started (its sha256 "
                "differs); resume on the same export, or --force to start over"
            )
        (out / "train.json").unlink(missing_ok=True)  # unfinished again until it ends
        return checkpoint
    # A training refused or stopped before its first checkpoint left only its own files: it
    # starts again without --force.
    never_saved = (
        out.is_dir()
        and {p.name for p in out.iterdir()} <= set(OUTPUTS)
        and not (out / "train.json").is_file()
        and latest_checkpoint(out) is None
    )
    if out.is_dir() and any(out.iterdir()):
        if not (force or never_saved):
            if (out / "train.json").is_file():
                raise TrainError(
                    f"{out} holds a finished training; pass --force to replace it, or choose "
                    "another --out"
                )
            if latest_checkpoint(out) is not None:
                raise TrainError(
                    f"{out} holds an unfinished training; pass --resume to continue it, or "
                    "--force to start over"
                )
            raise TrainError(f"{out} is not empty; choose a new --out, or pass --force")
        for name in OUTPUTS:  # only what a training writes; anything else in DIR stays
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    saved = {**options.to_json(), "data_sha256": data_sha256}
    saved_path.write_text(json.dumps(saved, indent=2), encoding="utf-8")
    return None


def pick_threads(options: TrainOptions) -> int:
    """CPU threads for torch: as given, or as many as the load leaves cores idle. Measured
    here: on 2 busy cores a LoRA step took 10x longer with 2 threads than with 1, since
    torch's threads wait for each other at every operation and one descheduled stalls all."""
    from apollo.llm.embedded import choose_threads

    return options.threads or choose_threads()


def pick_device(choice: str) -> str:
    """`cuda` when asked or (auto) when present, else `cpu`."""
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device here; use --device cpu (or auto)")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def prepare_model(base: base_mod.Base, options: TrainOptions) -> Any:
    """The model to train: LoRA on `base.model`, or its top blocks unfrozen."""
    model = base.model
    if options.method == LORA:
        from peft import LoraConfig, get_peft_model

        targets: str | list[str] = options.lora_targets
        if targets != "all-linear":
            targets = [t.strip() for t in options.lora_targets.split(",") if t.strip()]
        config = LoraConfig(
            r=options.lora_r,
            lora_alpha=options.lora_alpha,
            lora_dropout=options.lora_dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
        )
        try:
            return get_peft_model(model, config)
        except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
            raise TrainError(f"--lora-targets {options.lora_targets!r}: {exc}") from exc
    blocks = model.base_model.layers
    if not 1 <= options.top_layers <= len(blocks):
        raise TrainError(
            f"--full-top-layers {options.top_layers}: {base.name} has {len(blocks)} blocks; "
            f"give 1 to {len(blocks)}"
        )
    model.requires_grad_(False)
    for block in blocks[-options.top_layers :]:
        block.requires_grad_(True)
    return model


def make_trainer(
    model: Any,
    tokenizer: Any,
    dataset: Any,
    options: TrainOptions,
    device: str,
    callbacks: Sequence[Any] = (),
    trained_positions: bool = True,
) -> Any:
    """An SFTTrainer for `options`; with `trained_positions` (the default) its loss projects only
    the trained positions (apollo/train/loss.py), otherwise it is TRL's own."""
    import torch
    from trl import SFTConfig, SFTTrainer

    from apollo.train.loss import trained_positions_loss

    class TrainedPositionsTrainer(SFTTrainer):
        """SFTTrainer whose loss needs logits only where labels are trained."""

        # The loss divides by the trained tokens of the whole accumulated batch.
        loss_is_scaled_for_ga = True  # type: ignore[assignment]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = True  # so the Trainer counts those tokens

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            # Accelerate applies autocast inside the model's forward, which this bypasses.
            autocast = (
                torch.autocast(device_type=device, dtype=torch.bfloat16)
                if self.args.bf16
                else nullcontext()
            )
            with autocast:
                loss, _ = trained_positions_loss(model, inputs, num_items_in_batch)
            return loss

    bf16 = options.precision == "bf16"
    args = SFTConfig(
        output_dir=str(options.out / "checkpoints"),
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        learning_rate=options.learning_rate,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        warmup_steps=options.warmup_steps,
        logging_steps=1,
        save_strategy="steps",
        save_steps=options.save_steps,
        save_total_limit=2,
        bf16=bf16,
        fp16=False,
        use_cpu=device == "cpu",
        activation_checkpointing=options.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False},
        max_length=options.max_length,
        seed=options.seed,
        data_seed=options.seed,
        report_to="none",
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        log_level="error",
    )
    cls = TrainedPositionsTrainer if trained_positions else SFTTrainer
    trainer = cls(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for quiet in (PrinterCallback, ProgressCallback):  # the rich bar replaces them
        trainer.remove_callback(quiet)
    return trainer


def load_dataset(data: ExportData, cache: Path) -> Any:
    """The export's rows as a datasets.Dataset (written to `cache` as it is read)."""
    from datasets import Dataset

    def gen() -> Any:
        yield from rows(data.path)

    return Dataset.from_generator(gen, cache_dir=str(cache), keep_in_memory=False)


def quiet_libraries() -> None:
    """No tqdm bars or info logs from transformers, datasets and the GGUF reader: the rich
    bar is the progress."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    import datasets
    import transformers

    # Deprecation notices about transformers' own internals, not about anything given here.
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")

    transformers.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def train(
    options: TrainOptions,
    cache: Path,
    *,
    resume: bool = False,
    force: bool = False,
    command: str = "",
    base: base_mod.Base | None = None,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Train as `options` say, into options.out; `base` skips loading it (already loaded, and
    modified in place by training), `callbacks` are added to the trainer's."""
    from apollo.train.progress import TrainProgress

    options.check()
    spec = base_mod.resolve(options.base)
    data = read_export(options.data, options.max_length)
    device = pick_device(options.device)
    checkpoint = prepare_out(options, resume, force, data.data_sha256)
    quiet_libraries()
    import torch

    threads = pick_threads(options)
    torch.set_num_threads(threads)
    started = time.monotonic()
    if base is None:
        base = base_mod.load(spec, cache, data)
    elif base.spec.name != spec.name:
        raise TrainError(f"the loaded base is {base.name}, not {options.base}")
    else:
        base_mod.check_tokenizer(data, base.tokenizer, base.spec)
    # The base's files first: the adapter's config then names DIR/base as its base, a folder
    # with the config.json that peft and the adapter converter look for.
    base_mod.save_files(base.model, base.tokenizer, options.out / "base")
    base.model.name_or_path = str((options.out / "base").resolve())
    model = prepare_model(base, options)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    progress = TrainProgress()
    with tempfile.TemporaryDirectory(prefix="apollo-train-") as tmp:
        dataset = load_dataset(data, Path(tmp))
        trainer = make_trainer(
            model, base.tokenizer, dataset, options, device, [progress, *callbacks]
        )
        try:
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        finally:
            progress.close()
    record = finish(options, data, base, trainer, trainable, total, device, command, started)
    # Written whole or not at all: its presence means a finished training (a kill mid-write
    # must not leave a truncated one).
    staged = options.out / "train.json.tmp"
    staged.write_text(json.dumps(record, indent=2), encoding="utf-8")
    staged.replace(options.out / "train.json")
    return TrainResult(options.out, record)


def finish(
    options: TrainOptions,
    data: ExportData,
    base: base_mod.Base,
    trainer: Any,
    trainable: int,
    total: int,
    device: str,
    command: str,
    started: float,
) -> dict[str, Any]:
    """Save the weights, the base files, the loss curve and the model card; the record."""
    import peft
    import torch
    import transformers
    import trl

    out = options.out
    if options.method == LORA:
        trainer.model.save_pretrained(str(out / "adapter"))
    else:
        trainer.model.save_pretrained(str(out / "model"))
    state = trainer.state
    history = state.log_history
    points = loss_points(history)
    wall = next((e["train_s"] for e in reversed(history) if "train_s" in e), 0.0)
    record: dict[str, Any] = {
        "base": base.name,
        "base_sha256": base.spec.sha256,
        "method": options.method,
        "hyperparameters": options.hyperparameters(),
        "data": data.card_json(),
        "steps": state.global_step,
        "epochs_done": round(float(state.epoch or 0.0), 4),
        "tokens": int(state.num_input_tokens_seen),
        "tokens_per_s": round(state.num_input_tokens_seen / wall, 2) if wall else 0.0,
        "wall_s": round(wall, 2),
        "final_loss": points[-1][1] if points else float("nan"),
        "losses": [[s, v] for s, v in points],
        "trainable_parameters": trainable,
        "total_parameters": total,
        "device": device,
        "threads": torch.get_num_threads(),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "loss": "trained positions only (apollo/train/loss.py)",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "peft": peft.__version__,
            "python": sys.version.split()[0],
        },
        "load_and_train_s": round(time.monotonic() - started, 1),
        "command": command,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if points:
        plot_loss(points, out / "loss.png", f"{base.name}, {options.method}")
    (out / "README.md").write_text(render(record, data.card_text), encoding="utf-8")
    return record
