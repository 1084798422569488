"""Reading scenario files: YAML in, a validated `Scenario` or errors that point at lines.

Scenario authors edit YAML by hand, so an error must say where: the file, the line and
column, the field path (`objects[2].colour`) and the value that was wrong. PyYAML's node
tree keeps the marks; pydantic's error locations are mapped back onto them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scenarios.catalog import nearest
from scenarios.schema import Scenario
from scenarios.yamlfiles import LocatedIssue, YamlFileError, compose, read_text, validation_issues

DEFAULT_SCENARIO = "kitchen"


class ScenarioError(YamlFileError):
    """A scenario that cannot be used, with every problem found in it."""


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
    return parse_scenario(read_text(path, ScenarioError), str(path))


def parse_scenario(text: str, filename: str = "<string>") -> Scenario:
    """Validate scenario YAML text; errors carry `filename` and line numbers."""
    data, root = compose(text, filename, "fields (name, room, robot, ...)", ScenarioError)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(validation_issues(exc, root, filename, Scenario)) from None


def scenario_json_schema() -> dict[str, Any]:
    """JSON Schema of scenario files, for editors (YAML language servers read it)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "vla-agent scenario"
    return schema


def template_text(name: str) -> str:
    """The commented template scenario, named `name`; it validates as it is."""
    text = (resources.files("scenarios") / "template.yaml").read_text(encoding="utf-8")
    return text.replace("__NAME__", name)
