"""Perception from camera data, checked against ground truth on rendered frames.

The world is moved by writing the simulator's state in set-up (teleporting an object,
pointing the head); perception only gets observations.
"""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from perception.evaluation import grasp, hold, place_object, set_head
from perception.perception import Perception
from scenarios.world import SimWorld

AWAY = (1.4, 0.3)  # head pan/tilt that looks away from the table


@pytest.fixture(scope="module")
def distractors() -> SimWorld:
    w = SimWorld("distractors")
    yield w
    w.close()


def _look(world: SimWorld, perception: Perception, pan: float = 0.0, tilt: float = 0.75, times: int = 1):
    set_head(world, pan, tilt)
    belief = None
    for _ in range(times):
        obs = hold(world, 1)
        belief = perception.update(obs, time=world.time)
    return belief


def test_localises_and_tells_apart_every_object(distractors: SimWorld) -> None:
    """Cups in three colours and red things of four categories: each found where it is."""
    for seed in (0, 1):
        distractors.reset(seed=seed)
        perception = Perception.for_world(distractors)
        belief = _look(distractors, perception, times=3)
        truth = distractors.privileged_state(visibility=True)
        for oid in truth.visible:
            assert oid in belief.objects and belief.objects[oid].visible, oid
            err = np.linalg.norm(np.asarray(belief.objects[oid].position) - np.asarray(truth.objects[oid].pos))
            assert err < 0.02, f"{oid} off by {err:.3f} m"
            assert belief.holds(f"on({oid}, table)")[0]
            assert belief.holds(f"visible({oid})") == (True, pytest.approx(0.97))


def test_out_of_view_objects_keep_their_estimate_with_decaying_confidence(distractors: SimWorld) -> None:
    distractors.reset(seed=2)
    perception = Perception.for_world(distractors)
    seen = _look(distractors, perception, times=2)
    away = _look(distractors, perception, *AWAY, times=2)
    cup = away.objects["red_cup"]
    assert not cup.visible and cup.position == pytest.approx(seen.objects["red_cup"].position, abs=1e-6)
    assert cup.confidence < seen.objects["red_cup"].confidence
    later = perception.update(hold(distractors, 1), time=distractors.time + 200.0)
    assert later.objects["red_cup"].confidence < cup.confidence
    assert later.holds("on(red_cup, table)")[0]  # still believed, less surely
    assert later.holds("on(red_cup, table)")[1] < away.holds("on(red_cup, table)")[1]


def test_object_moved_while_out_of_view_is_found_in_its_new_place(distractors: SimWorld) -> None:
    distractors.reset(seed=3)
    perception = Perception.for_world(distractors)
    before = _look(distractors, perception, times=2)
    _look(distractors, perception, *AWAY)
    old = np.asarray(before.objects["red_ball"].position)
    new = old + np.array([-0.1, -0.15, 0.0])
    place_object(distractors, "red_ball", new)
    after = _look(distractors, perception, times=2)
    truth = np.asarray(distractors.privileged_state().objects["red_ball"].pos)
    assert np.linalg.norm(truth - old) > 0.1
    assert np.linalg.norm(np.asarray(after.objects["red_ball"].position) - truth) < 0.02


def test_object_taken_away_while_out_of_view_loses_its_predicates(distractors: SimWorld) -> None:
    distractors.reset(seed=4)
    perception = Perception.for_world(distractors)
    before = _look(distractors, perception, times=2)
    assert before.holds("on(red_can, table)")[0]
    _look(distractors, perception, *AWAY)
    place_object(distractors, "red_can", np.array([-2.0, -2.0, 0.07]))  # far behind the robot, on the floor
    after = _look(distractors, perception, times=3)
    assert not distractors.holds("on(red_can, table)")
    assert not after.objects["red_can"].visible
    assert not after.holds("on(red_can, table)")[0], after.predicates["on(red_can, table)"]
    assert not after.holds("visible(red_can)")[0]


@pytest.fixture(scope="module")
def kitchen() -> SimWorld:
    w = SimWorld("kitchen")
    yield w
    w.close()


def test_holding_follows_a_real_grasp_and_notices_a_slip(kitchen: SimWorld) -> None:
    kitchen.reset(seed=0)
    perception = Perception.for_world(kitchen)
    _look(kitchen, perception, times=2)
    rng = np.random.default_rng(0)
    grasp(kitchen, "red_cup", "left", rng)
    assert kitchen.holds("holding(red_cup)")
    belief = None
    for _ in range(3):
        belief = perception.update(hold(kitchen, 1, gripper={"left": 1.0}), time=kitchen.time)
    assert belief.holds("holding(red_cup)")[0]
    assert not belief.holds("on(red_cup, table)")[0]
    site = np.asarray(kitchen.privileged_state().robot.grasp_sites["left"])
    assert np.linalg.norm(np.asarray(belief.objects["red_cup"].position) - site) < 0.06
    # The cup slips out: it ends up back on the table while the gripper stays commanded closed.
    place_object(kitchen, "red_cup", np.array([0.85, 0.15, 0.802]))
    for _ in range(4):
        belief = perception.update(hold(kitchen, 1, gripper={"left": 1.0}), time=kitchen.time)
    assert not kitchen.holds("holding(red_cup)")
    assert not belief.holds("holding(red_cup)")[0]
    belief = _look(kitchen, perception, times=2)
    assert belief.holds("on(red_cup, table)")[0]


def test_people_and_their_hands_are_seen(kitchen: SimWorld) -> None:
    from perception.evaluation import look_at

    kitchen.reset(seed=1)
    perception = Perception.for_world(kitchen)
    look_at(kitchen, np.asarray(kitchen.scenario.people[0].hand_position()))
    belief = None
    for _ in range(2):
        belief = perception.update(hold(kitchen, 1), time=kitchen.time)
    truth = kitchen.privileged_state()
    hand = belief.people["person_1"].hand
    assert hand is not None
    assert np.linalg.norm(np.asarray(hand) - np.asarray(truth.people["person_1"].hand)) < 0.08


def test_commands_show_and_eval(tmp_path) -> None:
    from agent.commands_perception import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    runner = CliRunner()
    png = tmp_path / "det.png"
    result = runner.invoke(app, ["perception", "show", "kitchen", "--seed", "1", "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert png.exists() and png.stat().st_size > 1000
    result = runner.invoke(app, ["perception", "eval", "--frames", "4", "--scenario", "kitchen", "--robustness-frames", "0"])
    assert result.exit_code in (0, 1), result.output
    assert "Localisation" in result.output and "precision / recall" in result.output
    result = runner.invoke(app, ["perception", "show", "no_such_room"])
    assert result.exit_code == 2
