"""Where `apollo export` writes: a new path, or a regular file with --force, replaced only once
everything is written; anything else is a one-line error and leaves what was there."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from apollo import cli
from apollo.export import pipeline
from apollo.export.windows import ExportError
from apollo.log.store import StoreError
from tests.agent.harness import Outcome
from tests.export.runs import rich_run
from tests.export.test_cli import apollo


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("home")
    out: Outcome = rich_run(root)
    out.store.close()
    return root


def main(home: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """The real `apollo` entry point, in this process: exit code and stderr."""
    code = cli.main(["export", "--home", str(home), *argv])
    return code, capsys.readouterr().err


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_a_device_is_refused_and_left_alone(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = os.stat("/dev/full")
    for extra in ((), ("--force",)):
        code, err = main(home, capsys, "--out", "/dev/full", *extra)
        assert code == 2
        assert err.startswith("apollo: error: /dev/full is a character device")
        assert "choose another --out" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_a_fifo_and_a_directory_are_refused(home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)  # opening it to write would block until a reader came: never opened
    with pytest.raises(ExportError, match="is a FIFO"):
        apollo(home, "export", "--out", str(fifo), "--force")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    folder = tmp_path / "data.jsonl"
    folder.mkdir()
    with pytest.raises(ExportError, match="is a directory"):
        apollo(home, "export", "--out", str(folder), "--force")
    assert folder.is_dir() and not any(folder.iterdir())
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(ExportError, match="is a symbolic link"):
        apollo(home, "export", "--out", str(link), "--force")
    assert not (tmp_path / "elsewhere.jsonl").exists()
    assert leftovers(tmp_path) == []


def test_an_existing_file_is_replaced_only_with_force(home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "train.jsonl"
    dest.write_text("old data\n")
    dest.chmod(0o640)
    with pytest.raises(ExportError, match=r"already exists; pass --force to replace it"):
        apollo(home, "export", "--out", str(dest))
    assert dest.read_text() == "old data\n"
    assert not (tmp_path / "train.card.md").exists()
    assert apollo(home, "export", "--out", str(dest), "--force") == 0
    assert dest.read_text().count("\n") == 1 and dest.read_text() != "old data\n"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640  # a replaced file keeps its mode
    # The card beside it is held to the same rule.
    other = tmp_path / "other.jsonl"
    (tmp_path / "other.card.md").write_text("someone's notes")
    with pytest.raises(ExportError, match=r"other\.card\.md already exists"):
        apollo(home, "export", "--out", str(other))
    assert not other.exists() and (tmp_path / "other.card.md").read_text() == "someone's notes"
    assert leftovers(tmp_path) == []


def test_a_failed_export_leaves_the_old_files(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "train.jsonl"
    dest.write_text("old data\n")
    (tmp_path / "train.card.md").write_text("old card\n")

    def disk_full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pipeline, "_count", disk_full)
    with pytest.raises(ExportError, match="No space left on device; nothing was replaced"):
        apollo(home, "export", "--out", str(dest), "--force")
    assert dest.read_text() == "old data\n"
    assert (tmp_path / "train.card.md").read_text() == "old card\n"
    assert leftovers(tmp_path) == []


def test_unwritable_places_are_one_line_errors(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = main(home, capsys, "--out", str(blocker / "sub" / "train.jsonl"))
    assert code == 2 and "cannot write" in err and "a folder you can write" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    # sysfs refuses new files even to root, so this holds however the tests are run.
    code, err = main(home, capsys, "--out", "/sys/apollo-export.jsonl")
    assert code == 2 and "cannot write /sys/apollo-export.jsonl" in err
    assert "Traceback" not in err
    # A missing folder under a writable one is made, as before.
    assert main(home, capsys, "--out", str(tmp_path / "new" / "train.jsonl"))[0] == 0
    assert (tmp_path / "new" / "train.card.md").is_file()


def test_an_unknown_run_is_an_error_not_zero_samples(home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "train.jsonl"
    with pytest.raises(StoreError, match=r"no run 'nope' \(see `apollo runs`\)"):
        apollo(home, "export", "--out", str(dest), "--run", "nope")
    with pytest.raises(StoreError, match="no run 'nope'"):
        apollo(home, "export", "--inspect", "--run", "nope")
    assert not dest.exists()


def test_a_bad_tokenizer_is_a_clear_error(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = str(tmp_path / "tok.jsonl")
    code, err = main(home, capsys, "--format", "tokenized", "--tokenizer", "nope", "--out", dest)
    assert code == 2 and "tokenizer 'nope': no such folder or file" in err
    assert "--tokenizer smollm2" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = main(
        home, capsys, "--format", "tokenized", "--tokenizer", str(empty), "--out", dest
    )
    assert code == 2 and f"tokenizer {str(empty)!r}: cannot load a tokenizer from it" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not Path(dest).exists()


def test_an_embedded_models_tokenizer_is_named_as_the_model(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `apollo train --base embedded:NAME` asks for: the same tokens as the model's GGUF.
    packaged, named = tmp_path / "packaged.jsonl", tmp_path / "named.jsonl"
    assert main(home, capsys, "--format", "tokenized", "--out", str(packaged))[0] == 0
    flags = ["--format", "tokenized", "--tokenizer", "embedded:smollm2-135m"]
    assert main(home, capsys, *flags, "--out", str(named))[0] == 0
    assert named.read_text() == packaged.read_text() != ""
    code, err = main(
        home, capsys, "--format", "tokenized", "--tokenizer", "embedded:nope", "--out",
        str(tmp_path / "x.jsonl"),
    )  # fmt: skip
    assert code == 2 and "nope" in err and "apollo models" in err and "Traceback" not in err
