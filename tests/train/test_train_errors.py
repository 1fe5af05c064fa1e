"""`apollo train` refuses bad input with one line that names the problem and the fix, before
any model is loaded: the export (missing, not tokenized, empty, malformed, nothing trained),
the base, the hyperparameters, and the state of --out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apollo import cli
from apollo.train.data import TrainError, read_export
from apollo.train.options import TrainOptions
from apollo.train.sft import OPTIONS_FILE, prepare_out
from tests.train.data import write_rows
from tests.train.tiny import fake_trained

ROW = {"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}


def apollo_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `apollo train ARGV`; it must fail with exit code 2 and one `apollo:` line."""
    code = cli.main(["train", "--home", str(tmp_path / "home"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("apollo: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("rows", "fmt", "expect"),
    [
        ([], "tokenized", "is empty"),
        ([ROW], "openai", "is a 'openai' export"),
        ([{"messages": []}], "tokenized", "line 1: no input_ids and labels"),
        ([{"input_ids": [1, 2], "labels": [-100]}], "tokenized", "2 input_ids but 1 labels"),
        ([{"input_ids": [1, "x"], "labels": [1, 2]}], "tokenized", "lists of token ids"),
        ([{"input_ids": [1, 2], "labels": [-100, 9]}], "tokenized", "neither -100 nor its token"),
        ([{"input_ids": [1, 2, 3], "labels": [-100] * 3}] * 2, "tokenized", "every label"),
    ],
)
def test_bad_exports(tmp_path: Path, rows: list[dict[str, object]], fmt: str, expect: str) -> None:
    path = write_rows(tmp_path / "data.jsonl", rows, fmt=fmt)  # type: ignore[arg-type]
    with pytest.raises(TrainError, match=expect) as err:
        read_export(path, 4096)
    assert "apollo export" in str(err.value) or "--inspect" in str(err.value)


def test_missing_export_and_card(tmp_path: Path) -> None:
    with pytest.raises(TrainError, match=r"no export at .*apollo export --format tokenized"):
        read_export(tmp_path / "nope.jsonl", 4096)
    with pytest.raises(TrainError, match="is not a file"):
        read_export(tmp_path, 4096)
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps(ROW) + "\n")
    with pytest.raises(TrainError, match="no data card beside"):
        read_export(bare, 4096)


def test_trained_labels_beyond_max_length(tmp_path: Path) -> None:
    row = {"input_ids": list(range(40)), "labels": [-100] * 30 + list(range(30, 40))}
    path = write_rows(tmp_path / "data.jsonl", [row])
    with pytest.raises(TrainError, match=r"beyond --max-length 20; raise it .*40 tokens"):
        read_export(path, 20)
    data = read_export(path, 64)
    assert (data.rows, data.tokens, data.tokens_trained, data.truncated) == (1, 40, 10, 0)
    assert read_export(path, 35).truncated == 1


def test_the_card_is_read(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "data.jsonl", [ROW, ROW], source="tokenizer X, chat template Y")
    data = read_export(path, 4096)
    assert data.tokenizer == "tokenizer X, chat template Y"
    assert data.figures["format"] == "tokenized" and len(data.card_sha256) == 64
    assert data.first_ids == (5, 6, 7, 8) and data.tokens_trained == 4


@pytest.mark.parametrize(
    ("flags", "expect"),
    [
        (["--lr", "0"], "--lr must be in"),
        (["--lora-r", "0"], "--lora-r must be 1 or more"),
        (["--lora-dropout", "1"], "--lora-dropout must be in"),
        (["--epochs", "0"], "--epochs must be above 0"),
        (["--grad-accum", "0"], "--grad-accum must be"),
        (["--max-length", "4"], "--max-length must be 16"),
        (["--full-top-layers", "-1"], "--full-top-layers must be 1 or more"),
        (["--base", "embedded:nope"], "no embedded model 'nope'; use one of"),
        (["--base", "http://host/v1"], "--base 'http://host/v1': give `embedded`"),
    ],
)
def test_cli_bad_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expect: str
) -> None:
    data = write_rows(tmp_path / "data.jsonl", [ROW])
    err = apollo_error(tmp_path, capsys, "--data", str(data), "--out", str(tmp_path / "o"), *flags)
    assert expect in err


def test_cli_bad_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_rows(tmp_path / "chat.jsonl", [ROW], fmt="openai")
    err = apollo_error(tmp_path, capsys, "--data", str(data), "--out", str(tmp_path / "o"))
    assert "training needs token ids and labels" in err and "--format tokenized" in err


def options(tmp_path: Path, **kw: object) -> TrainOptions:
    settings: dict[str, object] = {"data": tmp_path / "data.jsonl", "out": tmp_path / "out", **kw}
    return TrainOptions(**settings)  # type: ignore[arg-type]


def test_out_dir_states(tmp_path: Path) -> None:
    opts = options(tmp_path)
    assert prepare_out(opts, resume=False, force=False, data_sha256="d1") is None
    saved = json.loads((opts.out / "checkpoints" / OPTIONS_FILE).read_text())
    assert saved["lr"] is None and saved["out"] == str(opts.out.resolve())
    assert saved["data_sha256"] == "d1"
    with pytest.raises(TrainError, match=r"nothing to resume .* drop --resume"):
        prepare_out(opts, resume=True, force=False, data_sha256="d1")
    (opts.out / "checkpoints" / "checkpoint-3").mkdir()
    (opts.out / "checkpoints" / "checkpoint-12").mkdir()
    with pytest.raises(TrainError, match=r"unfinished training; pass --resume .* or --force"):
        prepare_out(opts, resume=False, force=False, data_sha256="d1")
    latest = prepare_out(opts, resume=True, force=False, data_sha256="d1")
    assert latest == opts.out / "checkpoints" / "checkpoint-12"
    longer = options(tmp_path, epochs=9.0, max_steps=100)  # how long it runs may change
    assert prepare_out(longer, resume=True, force=False, data_sha256="d1") is not None
    with pytest.raises(TrainError, match=r"changed since the training .* started"):
        prepare_out(opts, resume=True, force=False, data_sha256="d2")
    with pytest.raises(TrainError, match="started with lora_r=16; resume with the same"):
        prepare_out(options(tmp_path, lora_r=8), resume=True, force=False, data_sha256="d1")
    (opts.out / "train.json").write_text("{}")
    (opts.out / "mine.txt").write_text("kept")
    with pytest.raises(TrainError, match="holds a finished training; pass --force"):
        prepare_out(opts, resume=False, force=False, data_sha256="d1")
    assert prepare_out(opts, resume=False, force=True, data_sha256="d1") is None
    assert sorted(p.name for p in opts.out.iterdir()) == ["checkpoints", "mine.txt"]
    assert list((opts.out / "checkpoints").iterdir()) == [opts.out / "checkpoints" / OPTIONS_FILE]


def test_out_dir_not_ours(tmp_path: Path) -> None:
    opts = options(tmp_path)
    opts.out.mkdir()
    (opts.out / "something").write_text("x")
    with pytest.raises(TrainError, match="is not empty; choose a new --out"):
        prepare_out(opts, resume=False, force=False, data_sha256="d1")
    file_out = options(tmp_path, out=tmp_path / "file")
    (tmp_path / "file").write_text("x")
    with pytest.raises(TrainError, match="is a file"):
        prepare_out(file_out, resume=False, force=False, data_sha256="d1")


def test_a_training_refused_before_its_first_checkpoint_starts_again(tmp_path: Path) -> None:
    # What a refusal after prepare_out (a tokenizer mismatch, say) or a Ctrl-C before the first
    # checkpoint leaves: only the training's own files, and no checkpoint.
    opts = options(tmp_path)
    assert prepare_out(opts, resume=False, force=False, data_sha256="d1") is None
    (opts.out / "base").mkdir()
    (opts.out / "base" / "config.json").write_text("{}")
    assert (
        prepare_out(options(tmp_path, lr=1e-4), resume=False, force=False, data_sha256="d2") is None
    )
    saved = json.loads((opts.out / "checkpoints" / OPTIONS_FILE).read_text())
    assert saved["lr"] == 1e-4 and saved["data_sha256"] == "d2"
    assert not (opts.out / "base").exists()


def test_a_trained_dir_is_not_a_base(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trained = fake_trained(tmp_path / "sft1")
    data = write_rows(tmp_path / "data.jsonl", [ROW])
    err = apollo_error(
        tmp_path, capsys, "--data", str(data), "--out", str(tmp_path / "o"),
        "--base", f"embedded:smollm2-135m+{trained}",
    )  # fmt: skip
    assert "give --base embedded:smollm2-135m" in err
