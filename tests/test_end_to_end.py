"""The method's loop end to end, small, on CPU: a family's instances, rollouts collected from
the scripted policy over loopback, exported as tokenized SFT data, a few training steps of a
LoRA on the smallest embedded model, that adapter served through llama.cpp, and an
evaluation of the served model on three test instances. Every stage goes through the CLI a
user types, and each stage reads only what the one before wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apollo.cli import main
from apollo.llm import models
from apollo.log.sqlite import SQLiteStore
from tests.rollout.policies import GatedServer

FAMILY = "noise-filter"
BASE = "embedded:smollm2-135m"
ROOT = Path(__file__).resolve().parents[1]


def apollo(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own (training sets torch's threads for the process)."""
    return subprocess.run(
        [sys.executable, "-m", "apollo.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=900,
    )


@pytest.mark.slow
def test_collect_export_train_serve_and_evaluate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    with GatedServer() as server:
        collect = ["collect", FAMILY, "--home", str(home), "--model", server.base_url]
        assert main([*collect, "--n", "3", "--annotator", "none", "--tag", "e2e"]) == 0
    assert "episodes: 3 · successes:" in capsys.readouterr().out

    data = tmp_path / "data.jsonl"
    exported = apollo(
        "export", "--home", str(home), "--tag", "e2e", "--format", "tokenized",
        "--tokenizer", "smollm2", "--out", str(data),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stdout + exported.stderr
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(rows) == 3  # one window per collected run, each with trained tokens
    assert all(any(label != -100 for label in r["labels"]) for r in rows)

    out = tmp_path / "trained"
    trained = apollo(
        "train", "--home", str(home), "--data", str(data), "--base", BASE, "--out", str(out),
        "--max-steps", "2", "--save-steps", "1",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    card = json.loads((out / "train.json").read_text())
    assert card["method"] == "lora" and card["steps"] == 2
    assert (out / "adapter" / "adapter_model.safetensors").is_file()

    evaluation = tmp_path / "eval"
    model = f"{BASE}+{out}"
    evaluated = apollo(
        "eval", model, "--home", str(home), "--family", FAMILY, "--split", "test", "--n", "3",
        "--max-steps", "2", "--out", str(evaluation),
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    episodes = [
        json.loads(line) for line in (evaluation / "episodes.jsonl").read_text().splitlines()
    ]
    assert sorted(e["seed"] for e in episodes) == [5000, 5001, 5002]
    # The adapter was converted and served: each run records the trained model by its full
    # name, and the server was started with the adapter's GGUF.
    assert (out / "adapter.gguf").is_file()
    store = SQLiteStore(home / "apollo.db")
    try:
        runs = {e["run_id"]: store.get_run(e["run_id"]) for e in episodes}
    finally:
        store.close()
    assert {r.config["options"]["model"] for r in runs.values() if r} == {models.canonical(model)}
    report = json.loads((evaluation / "report.json").read_text())
    assert report["overall"]["episodes"] == 3
    assert report["families"][FAMILY]["instances"] == 3
    assert (evaluation / "best_score.png").stat().st_size > 0
