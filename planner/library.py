"""The planner's library: skills, methods, word groups, read from YAML and validated.

The built-in files are `planner/library/*.yaml`; users add their own files (new skills,
new methods, more words) through `load_library(extra)` or the `VLA_AGENT_PLANNER_LIBRARY`
environment variable (paths separated by the OS path separator). A file is checked like a
scenario: every problem is reported with FILE:LINE:COLUMN, the field and the value, and
references across files (a method step naming an unknown skill) are checked after merging.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import structlog
import yaml
from pydantic import Field, ValidationError

from planner.methods import GroupSpec, MethodSpec
from planner.skills import CONSTANTS, SkillSpec, Strict
from scenarios.catalog import FURNITURE, nearest
from scenarios.yamlfiles import LocatedIssue, YamlFileError, compose, locate, read_text, validation_issues

log = structlog.get_logger(__name__)
LIBRARY_ENV = "VLA_AGENT_PLANNER_LIBRARY"


class WordsSpec(Strict):
    furniture_kinds: dict[str, list[str]] = Field(default_factory=dict)
    speaker: list[str] = Field(default_factory=list)
    robot: list[str] = Field(default_factory=list)
    person: list[str] = Field(default_factory=list)
    all: list[str] = Field(default_factory=list)
    closest: list[str] = Field(default_factory=list)
    farthest: list[str] = Field(default_factory=list)
    left: list[str] = Field(default_factory=list)
    right: list[str] = Field(default_factory=list)
    not_english_hint: str = ""


class RobotReach(Strict):
    """Geometry the reachability check uses (metres)."""

    radius: float = Field(0.3, gt=0.05, le=1.0, description="base footprint radius")
    leave: float = Field(0.6, ge=0.0, le=2.0, description="how much farther than `radius` from free floor the robot may stand "
                                                           "and still drive off: it got there, so it can leave the way it came "
                                                           "(the expert slides sideways into slots, between the tidy table's "
                                                           "legs and the bin, where this disc has no room)")
    reach: float = Field(0.85, gt=0.2, le=2.0, description="from the base centre to what the hand can reach")
    person_radius: float = Field(0.25, gt=0.05, le=1.0)
    max_height: float = Field(1.35, gt=0.2, le=3.0, description="highest surface the hand reaches")
    grid: float = Field(0.05, ge=0.01, le=0.2, description="cell size of the free-space grid")


class LibraryFile(Strict):
    skills: list[SkillSpec] = Field(default_factory=list)
    methods: list[MethodSpec] = Field(default_factory=list)
    groups: dict[str, GroupSpec] = Field(default_factory=dict)
    words: WordsSpec | None = None
    unknown_examples: list[str] = Field(default_factory=list)
    robot: RobotReach | None = None


LibraryIssue = LocatedIssue


class LibraryError(YamlFileError):
    """A library file (or a set of them) that cannot be used, with every problem found."""


@dataclass
class Library:
    """Skills, methods and words merged from the built-in files and any user files."""

    skills: dict[str, SkillSpec]
    methods: dict[str, MethodSpec]
    groups: dict[str, GroupSpec]
    words: WordsSpec
    unknown_examples: list[str]
    robot: RobotReach
    files: list[str] = field(default_factory=list)

    def digest(self) -> str:
        """Hash of everything language understanding depends on (for the embedding cache)."""
        payload = json.dumps(
            {"methods": {n: m.examples for n, m in self.methods.items()}, "unknown": self.unknown_examples},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def builtin_library_files() -> list[Path]:
    folder = Path(str(resources.files("planner") / "library"))
    return sorted(folder.glob("*.yaml"))


def _env_files() -> list[Path]:
    raw = os.environ.get(LIBRARY_ENV, "")
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def _expand_paths(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")) if p.is_dir() else [p])
    return out


def parse_library_file(text: str, filename: str) -> tuple[LibraryFile, yaml.Node | None]:
    """Validate one library file's text; raises LibraryError with located issues."""
    if not text.strip():
        return LibraryFile(), None
    data, root = compose(text, filename, "skills, methods, groups, ...", LibraryError)
    try:
        return LibraryFile.model_validate(data), root
    except ValidationError as exc:
        raise LibraryError(validation_issues(exc, root, filename, LibraryFile)) from None


def load_library(extra: list[Path | str] | None = None, *, include_env: bool = True) -> Library:
    """The built-in library merged with `extra` files or folders (and $VLA_AGENT_PLANNER_LIBRARY).

    Later files add skills and methods or replace same-named ones; words and example lists
    are extended. Raises LibraryError listing every problem in every file.
    """
    paths = builtin_library_files() + _expand_paths([Path(p) for p in (extra or [])] + (_env_files() if include_env else []))
    issues: list[LibraryIssue] = []
    parsed: list[tuple[str, LibraryFile, yaml.Node | None]] = []
    for path in paths:
        try:
            lib_file, root = parse_library_file(read_text(path, LibraryError), str(path))
            parsed.append((str(path), lib_file, root))
        except LibraryError as exc:
            issues.extend(exc.issues)
    if issues:
        raise LibraryError(issues)

    skills: dict[str, SkillSpec] = {}
    methods: dict[str, MethodSpec] = {}
    groups: dict[str, GroupSpec] = {}
    words: dict[str, Any] = WordsSpec().model_dump()
    unknown: list[str] = []
    robot = RobotReach()
    origin: dict[tuple[str, str], tuple[str, yaml.Node | None, tuple]] = {}
    for filename, lf, root in parsed:
        for i, s in enumerate(lf.skills):
            if s.name in skills:
                log.info("planner.library.skill_replaced", skill=s.name, file=filename)
            skills[s.name] = s
            origin[("skill", s.name)] = (filename, root, ("skills", i))
        for i, m in enumerate(lf.methods):
            if m.name in methods:
                log.info("planner.library.method_replaced", method=m.name, file=filename)
            methods[m.name] = m
            origin[("method", m.name)] = (filename, root, ("methods", i))
        for name, g in lf.groups.items():
            groups[name] = g
            origin[("group", name)] = (filename, root, ("groups", name))
        if lf.words is not None:
            for key, value in lf.words.model_dump(exclude_unset=True).items():
                if isinstance(value, list):
                    words[key] = words[key] + [v for v in value if v not in words[key]]
                elif isinstance(value, dict):
                    for k, v in value.items():
                        words[key].setdefault(k, [])
                        words[key][k] += [w for w in v if w not in words[key][k]]
                else:
                    words[key] = value
            for kind in lf.words.furniture_kinds:
                if kind not in FURNITURE:
                    hint = nearest(kind, list(FURNITURE))
                    issues.append(locate(filename, root, ("words", "furniture_kinds", kind),
                                          f"unknown furniture kind {kind!r}" + (f"; did you mean {hint!r}?" if hint else "")))
        unknown += lf.unknown_examples
        if lf.robot is not None:
            robot = lf.robot

    # References across files.
    for name, m in methods.items():
        filename, root, base = origin[("method", name)]
        for si, step in enumerate(m.parsed_steps()):
            for skill_name in step.skills:
                skill = skills.get(skill_name)
                if skill is None:
                    hint = nearest(skill_name, list(skills))
                    issues.append(locate(filename, root, base + ("steps", si), f"unknown skill {skill_name!r}" + (f"; did you mean {hint!r}?" if hint else "") + f" (known: {', '.join(skills)})", m.steps[si]))
                elif len(skill.params) != len(step.args):
                    issues.append(locate(filename, root, base + ("steps", si), f"{skill_name} takes {len(skill.params)} argument(s) ({', '.join(skill.params)}), the step gives {len(step.args)}", m.steps[si]))
        for slot_name, slot in m.slots.items():
            if slot.type == "object" and slot.group not in groups:
                hint = nearest(slot.group, list(groups))
                issues.append(locate(filename, root, base + ("slots", slot_name, "group"), f"unknown group {slot.group!r}" + (f"; did you mean {hint!r}?" if hint else "") + f" (known: {', '.join(groups)})", slot.group))
    for name, s in skills.items():
        clash = set(s.params) & set(CONSTANTS)
        if clash:
            filename, root, base = origin[("skill", name)]
            issues.append(locate(filename, root, base + ("params",), f"parameter name {sorted(clash)[0]!r} is reserved for a constant"))
    if "thing" not in groups:
        issues.append(LibraryIssue(paths[0].name if paths else "<library>", None, None, "groups", "the group 'thing' (every category) must exist"))
    if not methods:
        issues.append(LibraryIssue("<library>", None, None, "methods", "the library has no methods"))
    if issues:
        raise LibraryError(issues)
    return Library(skills, methods, groups, WordsSpec.model_validate(words), unknown, robot, [str(p) for p in paths])


_default: Library | None = None
_default_lock = threading.Lock()


def default_library() -> Library:
    """The built-in library plus $VLA_AGENT_PLANNER_LIBRARY, loaded once per process."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = load_library()
    return _default


def validate_files(paths: list[Path | str]) -> list[LibraryIssue]:
    """Problems in user library files (checked together with the built-in library); [] if none."""
    try:
        load_library(list(paths), include_env=False)
    except LibraryError as exc:
        return exc.issues
    return []
