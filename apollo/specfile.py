"""YAML spec files (a task's task.yaml, an experiment's spec) validated by a pydantic model,
with errors that name the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def read_mapping(path: Path, fields: str) -> dict[str, Any]:
    """The YAML mapping in `path`; a ValueError says what is wrong (`fields` names a few of
    the fields a mapping there holds, for the message)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc}); fix the syntax") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc}); save it as UTF-8") from exc
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc}); check it") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: must be a mapping of fields ({fields})")
    return raw


def validate(path: Path, raw: dict[str, Any], model: type[M]) -> M:
    """`raw` as a `model`; a ValueError has one line per problem, each naming the field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = _field_path(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown field; remove it or check its spelling"
            elif err["type"] == "missing":
                msg = "required field is missing; add it"
            problems.append(f"{path}: field '{field}': {msg}")
        raise ValueError("\n".join(problems)) from exc
