"""YAML files that people write, validated by pydantic, with errors that point at lines.

Scenario files and the planner's skill library are both hand-edited YAML, so they share
this: YAML 1.2 booleans (`on: table` stays a string), bounded and decoded reading with
plain-language errors, and pydantic errors mapped back onto the node marks PyYAML keeps,
so each problem reads `FILE:LINE:COLUMN: field.path: message (got VALUE)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from scenarios.catalog import nearest

MAX_FILE_BYTES = 1_000_000


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so `on: table` stays a string."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class LocatedIssue:
    """One problem, placed in a file."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        field = f" {self.path}:" if self.path else ""
        got = f" (got {self.value!r})" if self.value is not None and repr(self.value) not in self.message else ""
        return f"{where}:{field} {self.message}{got}"


class YamlFileError(Exception):
    """A file that cannot be used, with every problem found in it."""

    def __init__(self, issues: list[LocatedIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def read_text(path: Path, error: type[YamlFileError] = YamlFileError) -> str:
    """The file's text, or `error` saying in plain words why it cannot be read."""

    def fail(message: str) -> YamlFileError:
        return error([LocatedIssue(str(path), None, None, "", message)])

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise fail(f"file is {size} bytes; these files are at most {MAX_FILE_BYTES}")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("file not found") from None
    except IsADirectoryError:
        raise fail("is a directory, not a YAML file") from None
    except PermissionError:
        raise fail("cannot be read: permission denied") from None
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (byte {exc.start}); is it a YAML file?") from None
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror or exc}") from None


def compose(text: str, filename: str, what: str, error: type[YamlFileError] = YamlFileError) -> tuple[dict[str, Any], yaml.Node | None]:
    """(mapping, node tree) of YAML text whose top level must be a mapping of `what`."""
    try:
        loader = Yaml12Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise error([LocatedIssue(filename, line, col, "", f"not valid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise error([LocatedIssue(filename, None, None, "", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise error([LocatedIssue(filename, 1, 1, "", f"the file must be a mapping of {what}, got {type(data).__name__}")])
    return data, root


def node_at(root: yaml.Node | None, path: tuple) -> yaml.Node | None:
    """The deepest node along `path` (the value node of a mapping entry)."""
    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    node = value
                    break
            else:
                return node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def format_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def locate(filename: str, root: yaml.Node | None, path: tuple, message: str, value: Any = None) -> LocatedIssue:
    node = node_at(root, path)
    mark = node.start_mark if node is not None else None
    return LocatedIssue(filename, mark.line + 1 if mark else None, mark.column + 1 if mark else None, format_path(path), message, value)


def fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """Field names `model` expects at a path, for 'did you mean' on unknown keys."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        for arg in list(candidates):
            candidates += list(getattr(arg, "__args__", ()))
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
    return list(current.model_fields) if hasattr(current, "model_fields") else []


def validation_issues(exc: ValidationError, root: yaml.Node | None, filename: str, model: type[BaseModel]) -> list[LocatedIssue]:
    """pydantic's errors, located in the file, in words a YAML author understands.

    A value error whose cause carries `.issues` (each with `path`, `message`, `value`) is
    expanded into one located issue per entry: that is how cross-field checks report paths.
    """
    issues: list[LocatedIssue] = []
    for err in exc.errors():
        prefix = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if cause is not None and hasattr(cause, "issues"):
            issues.extend(locate(filename, root, prefix + tuple(i.path), i.message, i.value) for i in cause.issues)
            continue
        message = err["msg"].removeprefix("Value error, ")
        value = err.get("input") if err["type"] != "missing" else None
        if isinstance(value, (dict, list)):
            value = None
        if err["type"] == "missing":
            message = f"required field {prefix[-1]!r} is missing"
        elif err["type"] == "extra_forbidden":
            hint = nearest(str(prefix[-1]), fields_at(model, prefix[:-1]))
            message = f"unknown field {prefix[-1]!r}" + (f"; did you mean {hint!r}?" if hint else "")
        issues.append(locate(filename, root, prefix, message, value))
    return issues
