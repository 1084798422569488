"""Scenario files: the built-ins validate, and every kind of bad file gets a located error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agent.cli import app
from scenarios.loading import (
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
    scenario_json_schema,
    template_text,
)
from scenarios.predicates import Predicate
from scenarios.yamlfiles import Yaml12Loader

runner = CliRunner()

GOOD = """\
name: tiny
room: {size: [5.0, 4.0]}
robot:
  start: {x: 0.0, y: 0.0}
furniture:
  - {id: table, kind: table, pos: [1.0, 0.0]}
  - {id: bin, kind: bin, pos: [0.5, -1.2]}
  - {id: sofa, kind: sofa, pos: [-1.0, 1.4]}
objects:
  - {id: red_cup, category: cup, colour: red, on: table, at: [-0.3, 0.1]}
  - {id: blue_can, category: can, colour: blue, on: table, at: [-0.3, -0.15]}
people:
  - {id: person_1, pos: [2.0, -1.0], yaw_deg: 160}
goals:
  - text: serve a drink to the person
    success: ["given(red_cup, person_1)"]
"""


def only_issue(text: str):
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    return info.value.issues


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_good_file_parses():
    sc = parse_scenario(GOOD)
    assert [o.id for o in sc.objects] == ["red_cup", "blue_can"]
    assert sc.objects[0].on == "table"  # YAML 1.1 would have read the key `on` as True


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_builtin_scenarios_validate_with_goals(name: str):
    sc = load_scenario(name)
    assert sc.name == name
    assert sc.goals and all(g.success for g in sc.goals)
    assert sc.people, "every built-in scene has a person to hand things to"


def test_builtins_cover_the_required_scenes():
    scenes = {name: load_scenario(name) for name in builtin_scenarios()}
    kitchen = scenes["kitchen"]
    assert any(p.name == "given" for g in kitchen.goals for p in g.success)
    assert any(f.kind == "counter" for f in kitchen.furniture)
    tidy = scenes["tidy_table"]
    assert any(len([p for p in g.success if p.name == "in"]) >= 3 for g in tidy.goals)
    assert len(scenes["living_room"].objects) >= 4
    crowd = scenes["distractors"].objects
    cats = {}
    for o in crowd:
        cats.setdefault(o.category, set()).add(o.colour)
    colours = {}
    for o in crowd:
        colours.setdefault(o.colour, set()).add(o.category)
    assert any(len(c) >= 3 for c in cats.values()), "same category in several colours"
    assert any(len(c) >= 3 for c in colours.values()), "same colour in several categories"


def test_missing_field_names_it():
    text = GOOD.replace("room: {size: [5.0, 4.0]}\n", "")
    issues = only_issue(text)
    assert any(i.path == "room" and "missing" in i.message for i in issues)
    assert all(i.file == "bad.yaml" for i in issues)


def test_unknown_colour_names_line_value_and_suggestion():
    text = GOOD.replace("colour: red, on: table", "colour: redd, on: table")
    (issue,) = only_issue(text)
    assert issue.path == "objects[0].colour"
    assert issue.line == line_of(text, "redd")
    assert issue.value == "redd"
    assert "did you mean 'red'" in issue.message
    assert str(issue).startswith(f"bad.yaml:{issue.line}:")


def test_unknown_category_and_furniture_kind():
    text = GOOD.replace("category: can", "category: cann").replace("kind: bin", "kind: bim")
    issues = {i.path: i for i in only_issue(text)}
    assert "did you mean 'can'" in issues["objects[1].category"].message
    assert issues["objects[1].category"].line == line_of(text, "cann")
    assert "did you mean 'bin'" in issues["furniture[1].kind"].message


def test_overlapping_objects():
    text = GOOD.replace("at: [-0.3, -0.15]", "at: [-0.3, 0.12]")
    (issue,) = only_issue(text)
    assert issue.path == "objects[1].at"
    assert "overlaps red_cup" in issue.message
    assert issue.line == line_of(text, "blue_can")


def test_object_that_no_surface_can_hold():
    on_sofa = GOOD.replace("colour: blue, on: table", "colour: blue, on: sofa")
    (issue,) = only_issue(on_sofa)
    assert issue.path == "objects[1].on" and "cannot hold objects" in issue.message and "table" in issue.message

    off_edge = GOOD.replace("at: [-0.3, -0.15]", "at: [-0.59, -0.15]")
    (issue,) = only_issue(off_edge)
    assert issue.path == "objects[1].at" and "not fully on table" in issue.message

    no_such = GOOD.replace("colour: blue, on: table", "colour: blue, on: tabel")
    (issue,) = only_issue(no_such)
    assert "did you mean 'table'" in issue.message


def test_overlapping_furniture_and_robot_inside_furniture():
    text = GOOD.replace("pos: [0.5, -1.2]", "pos: [1.0, -0.3]")
    assert any("overlaps table" in i.message for i in only_issue(text))
    text = GOOD.replace("start: {x: 0.0, y: 0.0}", "start: {x: 1.0, y: 0.0}")
    assert any(i.path == "robot.start" and "overlap table" in i.message for i in only_issue(text))


def test_goal_naming_unknown_object_or_wrong_types():
    text = GOOD.replace("given(red_cup, person_1)", "given(red_cap, person_1)")
    (issue,) = only_issue(text)
    assert issue.path == "goals[0].success[0]" and "did you mean 'red_cup'" in issue.message
    text = GOOD.replace("given(red_cup, person_1)", "in(red_cup, table)")
    (issue,) = only_issue(text)
    assert "does not fit" in issue.message
    text = GOOD.replace("given(red_cup, person_1)", "gven(red_cup, person_1)")
    (issue,) = only_issue(text)
    assert "did you mean 'given'" in issue.message


def test_unknown_field_suggests_the_known_one():
    text = GOOD.replace("yaw_deg: 160", "yaw_degs: 160")
    (issue,) = only_issue(text)
    assert issue.path == "people[0].yaw_degs" and "did you mean 'yaw_deg'" in issue.message


def test_yaml_syntax_error_has_a_line():
    text = GOOD.replace("objects:\n", "objects:\n  - {id: broken\n", 1)
    (issue,) = only_issue(text)
    assert "not valid YAML" in issue.message and issue.line is not None


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "42\n"])
def test_not_a_mapping(text: str):
    (issue,) = only_issue(text)
    assert "mapping" in issue.message


def test_unreadable_files(tmp_path: Path):
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match="directory"):
        load_scenario(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(binary)
    with pytest.raises(ScenarioError, match="did you mean 'kitchen'"):
        load_scenario("kitchn")


def test_predicate_vocabulary():
    p = Predicate.parse("not on(red_cup, table)")
    assert p.negated and p.args == ("red_cup", "table") and str(p) == "not on(red_cup, table)"
    with pytest.raises(ValueError, match="takes 2 argument"):
        Predicate.parse("on(red_cup)")
    with pytest.raises(ValueError, match="is not a predicate"):
        Predicate.parse("on red_cup table")


def test_json_schema_is_valid_and_documents_fields():
    import jsonschema

    schema = scenario_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"name", "room", "robot"} <= set(schema["required"])
    validator = jsonschema.Draft202012Validator(schema)
    for path in builtin_scenarios().values():
        data = yaml.load(path.read_text(), Loader=Yaml12Loader)
        assert not list(validator.iter_errors(data)), path
    bad = yaml.load(GOOD.replace("[5.0, 4.0]", "five"), Loader=Yaml12Loader)
    assert list(validator.iter_errors(bad)), "an editor would flag a wrong type"
    committed = json.loads(Path(__file__).resolve().parents[1].joinpath("docs/scenario.schema.json").read_text())
    assert committed == schema, "docs/scenario.schema.json is stale: run `vla-agent scenario schema --out docs/scenario.schema.json`"


def test_template_validates():
    sc = parse_scenario(template_text("my_room"))
    assert sc.name == "my_room" and sc.goals


def test_cli_validate_reports_lines_and_exit_code(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("colour: red, on: table", "colour: redd, on: table"))
    result = runner.invoke(app, ["scenario", "validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:{line_of(bad.read_text(), 'redd')}:" in result.output
    assert "objects[0].colour" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    result = runner.invoke(app, ["scenario", "validate", str(good), "kitchen"])
    assert result.exit_code == 0, result.output


def test_cli_new_writes_a_valid_template_and_refuses_to_overwrite(tmp_path: Path):
    out = tmp_path / "lab.yaml"
    assert runner.invoke(app, ["scenario", "new", "lab", "--out", str(out)]).exit_code == 0
    assert load_scenario(out).name == "lab"
    assert "#" in out.read_text(), "the template is commented"
    again = runner.invoke(app, ["scenario", "new", "lab", "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(app, ["scenario", "new", "Bad Name", "--out", str(tmp_path / "x.yaml")]).exit_code == 2


def test_cli_list_shows_every_builtin():
    result = runner.invoke(app, ["scenario", "list"])
    assert result.exit_code == 0
    for name in builtin_scenarios():
        assert name in result.output
