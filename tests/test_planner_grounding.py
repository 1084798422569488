"""Referring expressions: colour, category groups, left/right, closest, plurals, ambiguity."""

from __future__ import annotations

import os

# One torch thread for the shared MiniLM encoder in this test process: on shared cores two
# threads make each forward pass 10-30x slower (see planner.language.Encoder).
os.environ.setdefault("VLA_AGENT_PLANNER_THREADS", "1")

import pytest

from planner import plan


def _targets(result) -> list[str]:
    assert result.kind == "plan", getattr(result, "reason", getattr(result, "question", result))
    return sorted({s.args[0] for s in result.graph.order() if s.skill == "pick"})


def test_colour_and_category_pick_one_among_look_alikes():
    assert _targets(plan("pick up the green cup", "distractors")) == ["green_cup"]
    assert _targets(plan("hand me the red can", "distractors")) == ["red_can"]


def test_left_and_right_follow_the_speaker_unless_it_says_your():
    # person_1 faces the table from its far corner: of the cups, the green one is most to the person's left
    assert _targets(plan("bring me the cup to my left", "distractors")) == ["green_cup"]
    assert _targets(plan("bring me the cup on my right", "distractors")) == ["blue_cup"]
    # the robot faces +x, so its left is +y, where the blue cup stands
    assert _targets(plan("pick up the cup on your left", "distractors")) == ["blue_cup"]


def test_closest_is_to_the_robot_unless_to_me():
    assert _targets(plan("bring me the closest drink", "living_room")) == ["green_bottle"]
    assert _targets(plan("bring me the drink closest to me", "distractors")) == ["blue_bottle"]


def test_a_near_tie_asks_instead_of_guessing():
    q = plan("give me the closest cup", "distractors")
    assert q.kind == "clarification"
    assert {c.id for c in q.candidates} == {"red_cup", "blue_cup", "green_cup"}


def test_plurals_and_groups():
    assert _targets(plan("put all the cups in the bin", "distractors")) == ["blue_cup", "green_cup", "red_cup"]
    assert _targets(plan("put all the toys in the bin", "tidy_table")) == ["red_ball"]
    assert _targets(plan("bring me all the drinks", "living_room")) == ["blue_can", "green_bottle", "white_cup"]


def test_location_narrows_the_reference():
    assert _targets(plan("bring me the cup on the coffee table", "living_room")) == ["white_cup"]
    assert _targets(plan("bring the can from the shelf to the person", "living_room")) == ["blue_can"]


def test_ambiguous_reference_is_a_structured_question_and_the_answer_plans():
    q = plan("bring me the red one", "distractors")
    assert q.kind == "clarification" and q.slot == "object"
    assert {c.id for c in q.candidates} == {"red_cup", "red_can", "red_box", "red_ball"}
    assert "red cup" in q.question
    answered = plan("bring me the red one", "distractors", answers={q.slot: "red_ball"})
    assert _targets(answered) == ["red_ball"]


def test_an_answer_that_does_not_fit_is_refused():
    out = plan("bring me the red one", "distractors", answers={"object": "table"})
    assert out.kind == "error" and out.code == "unknown_object"


@pytest.mark.parametrize(("goal", "needle"), [
    ("bring me the purple cup", "no purple cup"),
    ("bring me the keys", "'keys'"),
    ("bring me the cup to my left", "to your right"),  # kitchen: the only cup is to the person's right
])
def test_objects_that_do_not_exist_get_clear_errors(goal, needle):
    out = plan(goal, "kitchen")
    assert out.kind == "error" and out.code == "unknown_object", out
    assert needle in out.reason
