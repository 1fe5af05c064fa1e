"""`apollo models`, `--model embedded:NAME` and the sampling flags, run as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from apollo.cli import main
from apollo.llm import models
from apollo.llm.scripted import ScriptedServer
from apollo.log.sqlite import SQLiteStore
from tests.agent.harness import act, make_task
from tests.test_cli import apollo


def test_models_lists_every_model_with_its_state_and_measured_speed(tmp_path: Path) -> None:
    done = apollo("models", home=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:4]}
    assert set(rows) == set(models.MODELS)
    default = rows[models.DEFAULT.name]
    assert "(default)" in default and "491 MB" in default
    # setup installs the default's packages; its GGUF is assembled in this home on first use.
    assert "  installed  " in default
    for spec in models.MODELS.values():
        assert spec.speed is not None
        assert f"{spec.speed.gen_tok_s:g}" in rows[spec.name]
    assert f"speeds: {models.DEFAULT.speed.how}" in done.stdout  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "install"], "models install needs a NAME: one of qwen2.5-coder-0.5b"),
        (["models", "install", "gpt-9"], "no embedded model 'gpt-9'; use one of"),
        (["run", "interval-set", "--model", "embedded:gpt-9", "--queue"], "no embedded model"),
        (["run", "interval-set", "--temperature", "-1", "--queue"], "--temperature must be 0"),
        (["run", "interval-set", "--top-p", "0", "--queue"], "--top-p must be above 0"),
        (["run", "interval-set", "--max-tokens", "0", "--queue"], "--max-tokens must be a whole"),
        (["serve", "--model", "http://127.0.0.1:9/v1"], "give 'embedded' or 'embedded:NAME'"),
        (["demo", "--model", "embedded:gpt-9"], "no embedded model 'gpt-9'"),
        (["models", "merge"], "models merge needs the DIR `apollo train --out` wrote"),
        (["models", "merge", "/nowhere"], "no trained model directory /nowhere"),
        (
            ["run", "interval-set", "--model", "embedded:smollm2-135m+/nowhere", "--queue"],
            "no trained model directory /nowhere",
        ),
        (["serve", "--model", "embedded:smollm2-135m+/nowhere"], "no trained model directory"),
        (["demo", "--model", "embedded:smollm2-135m+/nowhere"], "no trained model directory"),
    ],
)
def test_bad_model_and_sampling_settings_get_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main([*args, "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("apollo: error: ") and message in err and err.count("\n") == 1
    assert SQLiteStore(tmp_path / "apollo.db").list_runs() == []


def test_a_run_stores_the_full_embedded_name_and_its_sampling(tmp_path: Path) -> None:
    done = apollo(
        "run",
        "interval-set",
        "--temperature",
        "0.7",
        "--top-p",
        "0.9",
        "--queue",
        home=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    [record] = SQLiteStore(tmp_path / "apollo.db").list_runs()
    run = SQLiteStore(tmp_path / "apollo.db").get_run(record.id)
    assert run is not None
    # The default is resolved now: a resume keeps this model when the default changes.
    assert run.config["options"]["model"] == f"embedded:{models.DEFAULT.name}"
    assert run.config["options"]["params"] == {"temperature": 0.7, "top_p": 0.9}


def test_sampling_flags_reach_an_endpoint_model(tmp_path: Path) -> None:
    task = make_task(tmp_path)
    with ScriptedServer([act("finish", summary="done")]) as server:
        done = apollo(
            "run",
            str(task.path),
            "--model",
            server.base_url,
            "--temperature",
            "0.3",
            "--top-p",
            "0.8",
            "--max-tokens",
            "50",
            "--quiet",
            home=tmp_path / "home",
        )
        bodies = server.bodies()
    assert done.returncode == 0, done.stderr
    assert bodies, "the model was never called"
    for body in bodies:
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.8, 50)


def test_a_run_on_a_trained_model_stores_its_full_name_and_resumes_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apollo.rollout.runner import RunOptions
    from tests.train.tiny import fake_trained

    fake_trained(tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    model = f"embedded:{models.SMOLLM2.name}+out"
    done = apollo("run", "interval-set", "--model", model, "--queue", home=tmp_path / "home")
    assert done.returncode == 0, done.stderr
    store = SQLiteStore(tmp_path / "home" / "apollo.db")
    [record] = store.list_runs()
    run = store.get_run(record.id)
    assert run is not None
    # Absolute, so a resume from another directory serves the same trained model.
    full = f"embedded:{models.SMOLLM2.name}+{tmp_path / 'out'}"
    assert run.config["options"]["model"] == full
    spec = models.parse(RunOptions.from_config(run.config).model)
    assert spec is not None and spec.trained == tmp_path / "out"
