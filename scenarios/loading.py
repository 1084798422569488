"""Reading scenario files: YAML in, a validated `Scenario` or errors that point at lines.

Scenario authors edit YAML by hand, so an error must say where: the file, the line and
column, the field path (`objects[2].colour`) and the value that was wrong. PyYAML's node
tree keeps the marks; pydantic's error locations are mapped back onto them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from scenarios.catalog import nearest
from scenarios.schema import Issue, Scenario, ScenarioConsistencyError

DEFAULT_SCENARIO = "kitchen"


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so `on: table` stays a string."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
MAX_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class LocatedIssue:
    """An `Issue` placed in a file."""

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


class ScenarioError(Exception):
    """A scenario that cannot be used, with every problem found in it."""

    def __init__(self, issues: list[LocatedIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def builtin_dir() -> Path:
    return Path(str(resources.files("scenarios") / "builtin"))


def builtin_scenarios() -> dict[str, Path]:
    """Built-in scenario names and their files, sorted by name."""
    return {p.stem: p for p in sorted(builtin_dir().glob("*.yaml"))}


def resolve(name_or_path: str | Path) -> Path:
    """A built-in scenario's name or a path to a YAML file, as a path."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    known = builtin_scenarios()
    if str(name_or_path) in known:
        return known[str(name_or_path)]
    hint = nearest(str(name_or_path), list(known))
    raise ScenarioError([LocatedIssue(
        str(name_or_path), None, None, "",
        f"no built-in scenario or file named {str(name_or_path)!r}"
        + (f"; did you mean {hint!r}?" if hint else "")
        + f" (built-in: {', '.join(known)})",
    )])


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario by built-in name or file path; raises `ScenarioError`."""
    path = resolve(name_or_path)
    return parse_scenario(_read_text(path), str(path))


def parse_scenario(text: str, filename: str = "<string>") -> Scenario:
    """Validate scenario YAML text; errors carry `filename` and line numbers."""
    try:
        loader = _Yaml12Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise ScenarioError([LocatedIssue(filename, line, col, "", f"not valid YAML: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([LocatedIssue(filename, None, None, "", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ScenarioError([LocatedIssue(
            filename, 1, 1, "", f"a scenario file must be a mapping of fields (name, room, robot, ...), got {type(data).__name__}"
        )])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_locate(exc, root, filename)) from None


def _read_text(path: Path) -> str:
    def fail(message: str) -> ScenarioError:
        return ScenarioError([LocatedIssue(str(path), None, None, "", message)])

    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise fail(f"file is {size} bytes; scenario files are at most {MAX_FILE_BYTES}")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail("file not found") from None
    except IsADirectoryError:
        raise fail("is a directory, not a scenario file") from None
    except PermissionError:
        raise fail("cannot be read: permission denied") from None
    except UnicodeDecodeError as exc:
        raise fail(f"is not UTF-8 text (byte {exc.start}); is it a YAML file?") from None
    except OSError as exc:
        raise fail(f"cannot be read: {exc.strerror or exc}") from None


def _locate(exc: ValidationError, root: yaml.Node, filename: str) -> list[LocatedIssue]:
    issues: list[Issue] = []
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        prefix = tuple(err["loc"])
        if isinstance(cause, ScenarioConsistencyError):
            issues.extend(Issue(prefix + i.path, i.message, i.value) for i in cause.issues)
            continue
        message = err["msg"].removeprefix("Value error, ")
        value = err.get("input") if err["type"] != "missing" else None
        if isinstance(value, (dict, list)):
            value = None
        if err["type"] == "missing":
            message = f"required field {prefix[-1]!r} is missing"
        elif err["type"] == "extra_forbidden":
            parent = _node_at(root, prefix[:-1])[0]
            known = _mapping_keys(parent)
            hint = nearest(str(prefix[-1]), _fields_for(prefix[:-1]))
            message = f"unknown field {prefix[-1]!r}" + (f"; did you mean {hint!r}?" if hint and hint not in known else "")
        issues.append(Issue(prefix, message, value))
    located = []
    for issue in issues:
        node, exact = _node_at(root, issue.path)
        mark = node.start_mark if node is not None else None
        located.append(LocatedIssue(
            filename,
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
            _format_path(issue.path),
            issue.message,
            issue.value,
        ))
    return located


def _fields_for(path: tuple) -> list[str]:
    """Field names the model expects at a path, for 'did you mean' on unknown keys."""
    model: Any = Scenario
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        ann = field.annotation
        for candidate in (ann, *getattr(ann, "__args__", ())):
            if isinstance(candidate, type) and hasattr(candidate, "model_fields"):
                model = candidate
                break
    return list(model.model_fields)


def _mapping_keys(node: yaml.Node | None) -> set[str]:
    if isinstance(node, yaml.MappingNode):
        return {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return set()


def _node_at(root: yaml.Node | None, path: tuple) -> tuple[yaml.Node | None, bool]:
    """The deepest node along `path` (the key node for a mapping entry), and whether it was reached."""
    node = root
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    node = value
                    break
            else:
                return node, False
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
        else:
            return node, False
    return node, True


def _format_path(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def scenario_json_schema() -> dict[str, Any]:
    """JSON Schema of scenario files, for editors (YAML language servers read it)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "vla-agent scenario"
    return schema


def write_json_schema(path: Path) -> None:
    path.write_text(json.dumps(scenario_json_schema(), indent=2) + "\n")


def template_text(name: str) -> str:
    """The commented template scenario, named `name`; it validates as it is."""
    text = (resources.files("scenarios") / "template.yaml").read_text(encoding="utf-8")
    return text.replace("__NAME__", name)
