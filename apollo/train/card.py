"""The model card of a training (DIR/README.md) and its loss curve (DIR/loss.png)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def loss_points(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """(step, training loss) of every logged step, in order."""
    return [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e]


def plot_loss(points: list[tuple[int, float]], dest: Path, title: str) -> None:
    """The loss curve as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([s for s, _ in points], [v for _, v in points], marker="." if len(points) < 50 else "")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(dest)
    plt.close(fig)


def _demote(markdown: str) -> str:
    """The data card's headings two levels down, to sit under the model card's."""
    lines = markdown.splitlines()
    return "\n".join("##" + line if line.startswith("#") else line for line in lines)


def render(record: dict[str, Any], data_card: str) -> str:
    """DIR/README.md: what was trained on what, how, how fast, and the data card."""
    method = record["method"]
    weights = (
        "`adapter/` (peft LoRA: adapter_config.json, adapter_model.safetensors)"
        if method == "lora"
        else "`model/` (the whole fine-tuned model, safetensors)"
    )
    hp = "\n".join(f"| {k} | {v} |" for k, v in record["hyperparameters"].items())
    lines = [
        f"# Model card: {record['base']} fine-tuned ({method})",
        "",
        f"Trained by `{record['command']}` on {record['finished']}.",
        "",
        f"- base: {record['base']} (GGUF sha256 {record['base_sha256']}), dequantized to fp32",
        f"- weights: {weights}; the base's config and tokenizer files in `base/`",
        f"- trainable parameters: {record['trainable_parameters']:,} of "
        f"{record['total_parameters']:,}",
        f"- data: {record['data']['path']} ({record['data']['rows']} samples, "
        f"{record['data']['tokens']:,} tokens, {record['data']['tokens_trained']:,} trained); "
        f"card sha256 {record['data']['card_sha256']}",
        f"- device: {record['device']}",
        "",
        "## Results",
        "",
        f"- optimizer steps: {record['steps']}; tokens seen: {record['tokens']:,}",
        f"- final training loss: {record['final_loss']:.4f}",
        f"- speed: {record['tokens_per_s']:.1f} tokens/s; wall time (training): "
        f"{record['wall_s']:.1f} s; peak RSS: {record['peak_rss_mb']:,.0f} MB",
        "",
        "![training loss](loss.png)",
        "",
        "## Hyperparameters",
        "",
        "| setting | value |",
        "| --- | --- |",
        hp,
        "",
        "## Figures",
        "",
        "```json",
        json.dumps(record, indent=2),
        "```",
        "",
        "## Data card",
        "",
        _demote(data_card.strip()),
        "",
    ]
    return "\n".join(lines)
