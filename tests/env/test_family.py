"""Task families: specs with splits of seeds, instances made from a seed, runs that record them."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from apollo.env.evaluate import evaluate
from apollo.env.family import (
    instance,
    load_family,
    parse_instance,
    resolve,
    resolve_family,
    split_seeds,
)
from apollo.env.task import TaskSpecError, load_task, parse_seeds
from apollo.env.workspace import Workspace
from apollo.rollout.home import Home
from apollo.rollout.runner import RunOptions, register_run
from tests.env.conftest import make_family_dir


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under a folder by relative path, with its bytes."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_a_family_lists_its_splits_and_seeds(tmp_path: Path) -> None:
    family = load_family(make_family_dir(tmp_path))
    assert family.id == "toy-family"
    assert family.splits == {"train": 20, "test": 6} or family.splits == {"test": 6, "train": 20}
    assert family.seeds("train") == list(range(100, 120))
    assert family.seeds("test") == [500, 501, 502, 503, 504, 900]
    assert (family.split_of(119), family.split_of(900), family.split_of(120)) == (
        "train",
        "test",
        None,
    )
    assert split_seeds(str(family.task.path), "test") == family.seeds("test")
    with pytest.raises(ValueError, match="no split 'dev'; this family has test, train"):
        family.seeds("dev")


@pytest.mark.parametrize(
    ("family", "message"),
    [
        (
            {"splits": {"train": "100-199", "test": "150-250"}},
            "splits 'train' and 'test' share seed 150; splits must be disjoint",
        ),
        ({"splits": {"train": "1-5", "test": ["7", "6-9"]}}, "its ranges overlap at seed 7"),
        ({"splits": {"train": "20-10"}}, "runs backwards; write it low-high, e.g. '10-20'"),
        ({"splits": {"train": "ten"}}, "is not a seed range; write e.g. '1000-1299'"),
        ({"splits": {"Train": "1-5"}}, "'family.splits.Train.[key]'"),
        ({"splits": {}}, "give named splits of seeds"),
        ({"splits": {"train": "0-99999999"}}, "more than 1,000,000 seeds"),
        ({"generator": "python3 generate.py {seed}"}, "lacks {workspace}, {truth}"),
        ({"generator": "python3 make.py {seed} {workspace} {truth}"}, "'make.py' not found in"),
    ],
)
def test_bad_family_specs_name_the_field_and_the_fix(
    tmp_path: Path, family: dict[str, Any], message: str
) -> None:
    folder = make_family_dir(tmp_path, family=family)
    with pytest.raises(TaskSpecError, match=r"task\.yaml: field 'family") as err:
        load_task(folder)
    assert message in str(err.value)


def test_a_family_spec_is_not_an_instance_too(tmp_path: Path) -> None:
    folder = make_family_dir(tmp_path)
    spec = yaml.safe_load((folder / "task.yaml").read_text())
    spec["instance"] = {"family": "toy-family", "seed": 1, "digest": "0" * 64}
    (folder / "task.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(TaskSpecError, match="not both; remove 'instance'"):
        load_task(folder)


def test_a_family_keeps_eval_truth_free_for_its_instances(tmp_path: Path) -> None:
    folder = make_family_dir(tmp_path)
    (folder / "eval" / "truth").mkdir()
    with pytest.raises(TaskSpecError, match="must not have one; rename it"):
        load_task(folder)


def test_seed_ranges_parse() -> None:
    assert parse_seeds("1000-1299") == ((1000, 1299),)
    assert parse_seeds([9, "1-3"]) == ((1, 3), (9, 9))
    with pytest.raises(ValueError, match="not a seed range"):
        parse_seeds(True)


def test_an_instance_is_reproducible_byte_for_byte(tmp_path: Path) -> None:
    family = load_family(make_family_dir(tmp_path))
    first = family.materialize(103, tmp_path / "a")
    again = family.materialize(103, tmp_path / "b")
    other = family.materialize(104, tmp_path / "a")
    assert first.path != again.path
    assert tree(first.path) == tree(again.path)
    assert (first.workspace_template / "puzzle.txt").read_bytes() != (
        other.workspace_template / "puzzle.txt"
    ).read_bytes()
    assert tree(first.eval_dir / "truth") != tree(other.eval_dir / "truth")


def test_an_instance_is_a_task_that_records_its_family_seed_and_split(tmp_path: Path) -> None:
    family = load_family(make_family_dir(tmp_path))
    task = family.materialize(501, tmp_path / "instances")
    assert task.id == "toy-family@501"
    assert task.spec.family is None and task.spec.instance is not None
    assert task.spec.instance.digest == family.digest
    assert task.instance_fields() == {"family": "toy-family", "split": "test", "seed": 501}
    assert task.spec.success_score == 50
    # The template's files plus the generated ones; the truth stays in the hidden eval/.
    assert sorted(tree(task.workspace_template)) == ["README.txt", "puzzle.txt"]
    assert (task.eval_dir / "truth" / "answer.json").is_file()
    assert family.materialize(119, tmp_path / "instances").instance_fields()["split"] == "train"
    assert family.materialize(7, tmp_path / "instances").instance_fields()["split"] is None


def test_the_instances_evaluator_reads_its_truth_in_the_sandbox(tmp_path: Path) -> None:
    task = load_family(make_family_dir(tmp_path)).materialize(110, tmp_path / "instances")
    ws = Workspace.create(task, tmp_path / "run")
    assert asyncio.run(evaluate(task, ws)).score == 0
    answer = json.loads((task.eval_dir / "truth" / "answer.json").read_text())["answer"]
    (ws.path / "answer.txt").write_text(f"{answer}\n")
    assert asyncio.run(evaluate(task, ws)).score == 100


def test_an_instance_is_made_once_and_an_edited_family_makes_new_ones(tmp_path: Path) -> None:
    folder = make_family_dir(tmp_path)
    task = load_family(folder).materialize(105, tmp_path / "instances")
    marker = task.path / "workspace" / "README.txt"
    marker.write_text("changed after it was made\n")
    assert load_family(folder).materialize(105, tmp_path / "instances").path == task.path
    assert marker.read_text() == "changed after it was made\n"
    (folder / "eval" / "generate.py").write_text(
        (folder / "eval" / "generate.py").read_text() + "# a new version\n"
    )
    edited = load_family(folder).materialize(105, tmp_path / "instances")
    assert edited.path != task.path
    assert edited.path.parent == task.path.parent


def test_concurrent_makers_of_one_instance_agree(tmp_path: Path) -> None:
    family = load_family(make_family_dir(tmp_path))
    made: list[Path] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            made.append(family.materialize(111, tmp_path / "instances").path)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(made)) == 1
    # No half-made build folders are left beside it.
    assert [p.name for p in made[0].parent.iterdir()] == [made[0].name]


def test_a_failing_generator_is_a_clear_error(tmp_path: Path) -> None:
    folder = make_family_dir(tmp_path)
    (folder / "eval" / "generate.py").write_text("import sys\nsys.exit('no such puzzle')\n")
    with pytest.raises(
        TaskSpecError, match="for seed 3 exited with code 1; stderr: no such puzzle"
    ):
        load_family(folder).materialize(3, tmp_path / "instances")
    assert list((tmp_path / "instances" / "toy-family").iterdir()) == []


def test_resolve_names_instances_families_and_mistakes(tmp_path: Path) -> None:
    folder = make_family_dir(tmp_path)
    task = resolve(f"{folder}@102", tmp_path / "instances")
    assert task.id == "toy-family@102"
    assert instance(str(folder), 102, tmp_path / "instances").path == task.path
    assert resolve(str(task.path), tmp_path / "instances").id == "toy-family@102"
    assert parse_instance("noise-filter") is None
    with pytest.raises(TaskSpecError, match="named FAMILY@SEED with a whole-number seed"):
        resolve(f"{folder}@x", tmp_path / "instances")
    with pytest.raises(TaskSpecError, match="no such family; use a built-in family"):
        resolve("no-such-family@3", tmp_path / "instances")
    with pytest.raises(TaskSpecError, match="is a single task, not a family"):
        resolve_family("interval-set")


def test_a_run_records_family_split_and_seed_and_a_family_is_not_run(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    store = home.open_store()
    family = load_family(make_family_dir(tmp_path))
    with pytest.raises(ValueError, match=r"run an instance of it as toy-family@SEED \(seeds: "):
        register_run(store, home, family.task, RunOptions())
    task = family.materialize(502, home.instances_dir)
    run_id = register_run(store, home, task, RunOptions(), queued=True)
    record = store.get_run(run_id)
    assert record is not None and record.task == "toy-family@502"
    assert {k: record.config[k] for k in ("family", "split", "seed")} == {
        "family": "toy-family",
        "split": "test",
        "seed": 502,
    }
    assert record.config["queued"] is True
    assert load_task(record.config["task_path"]).id == "toy-family@502"


def test_a_broken_leftover_in_the_instances_place_is_a_clear_error(tmp_path: Path) -> None:
    family = load_family(make_family_dir(tmp_path))
    place = family.instance_dir(106, (tmp_path / "instances").resolve())
    place.mkdir(parents=True)
    (place / "stray.txt").write_text("not an instance\n")
    with pytest.raises(TaskSpecError, match="remove that folder and try again"):
        family.materialize(106, tmp_path / "instances")
