"""`apollo export`, `apollo supervise` and `apollo label` through their argparse commands."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from apollo.export import cli as export_cli
from apollo.rollout.home import Home
from apollo.supervise import cli as supervise_cli
from apollo.supervise.labels import read_labels
from tests.agent.harness import Outcome
from tests.export.runs import rich_run


def parser() -> argparse.ArgumentParser:
    """The same shape as apollo.cli.build_parser's `add` helper."""
    root = argparse.ArgumentParser(prog="apollo")
    sub = root.add_subparsers(dest="command", required=True)

    def add(
        name: str, fn: Callable[[argparse.Namespace, Home], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.set_defaults(fn=fn)
        return p

    supervise_cli.add_commands(sub, add)
    export_cli.add_commands(sub, add)
    return root


def apollo(home: Path, *argv: str) -> int:
    args = parser().parse_args(argv)
    return int(args.fn(args, Home(home)))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Outcome]:
    root = tmp_path_factory.mktemp("home")
    out = rich_run(root)
    return root, out


def test_label_supervise_export_inspect(
    home: tuple[Path, Outcome], capsys: pytest.CaptureFixture[str]
) -> None:
    root, out = home
    assert (
        apollo(root, "label", out.run_id, "4", "mask", "--reason", "noise", "--author", "eve") == 0
    )
    with pytest.raises(ValueError, match="needs a reason"):
        apollo(root, "label", out.run_id, "4", "mask")
    assert apollo(root, "supervise", out.run_id, "--json") == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["masked_by"]["human"] == 1 and report["rule_labels_written"] > 0
    assert {lb.source for lb in read_labels(out.store, out.run_id)} == {"human", "rule"}

    dest = root / "data" / "train.jsonl"
    assert apollo(root, "export", "--format", "openai", "--out", str(dest), "--summaries") == 0
    lines = dest.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["parallel_tool_calls"] is False
    card = (root / "data" / "train.card.md").read_text()
    figures = json.loads(card.split("```json\n")[1].split("```")[0])
    assert figures["runs"] == 1 and figures["samples"] == 1
    assert figures["assistant_turns_masked"] == report["masked"]
    assert figures["mask_reasons"]["human"] == 1 and figures["guidance_turns_kept"] == 2
    assert figures["policy"]["mode"] == "precedence" and "apollo" in figures["command"]
    assert figures["tokens_trained"] > 0 and figures["tokens_masked"] > 0

    capsys.readouterr()
    assert apollo(root, "export", "--inspect", "--no-color", "--format", "sharegpt") == 0
    shown = capsys.readouterr().out
    assert "+ == #" in shown and "TRAINED" in shown
    assert "- == #" in shown and "MASKED (human eve: noise)" in shown
    assert '"conversations"' in shown


def test_filters_select_runs(home: tuple[Path, Outcome]) -> None:
    root, out = home
    dest = root / "f.jsonl"
    cases = {
        ("--task", "fake-task"): 1,
        ("--task", "other"): 0,
        ("--status", "finished"): 1,
        ("--status", "failed"): 0,
        ("--min-score", "40"): 1,
        ("--max-score", "10"): 0,
        ("--annotator", "bob"): 1,
        ("--annotator", "nobody"): 0,
        ("--since", "2000-01-01"): 1,
        ("--until", "2000-01-01"): 0,
        ("--run", out.run_id): 1,
    }
    for flags, n in cases.items():
        assert apollo(root, "export", "--out", str(dest), "--force", *flags) == 0
        assert len(dest.read_text().splitlines()) == n, flags
    shutil.rmtree(root / "runs", ignore_errors=True)


def test_tokenized_export_in_workers(home: tuple[Path, Outcome]) -> None:
    root, _ = home
    written = []
    for workers in ("1", "2"):
        dest = root / f"tok{workers}.jsonl"
        argv = ["export", "--format", "tokenized", "--out", str(dest), "--workers", workers]
        assert apollo(root, *argv) == 0
        written.append(dest.read_bytes())
    assert written[0] == written[1] and b'"input_ids"' in written[0]
    with pytest.raises(ValueError, match="--workers 0: give 1 or more"):
        apollo(
            root,
            "export",
            "--format",
            "tokenized",
            "--out",
            str(root / "x.jsonl"),
            "--workers",
            "0",
        )
    assert not (root / "x.jsonl").exists()
