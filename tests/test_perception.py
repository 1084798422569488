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
            # 2.5 cm: at half resolution a cup whose near rim is hidden is placed ~2.1 cm off (0.2 cm at full
            # resolution); the target is the median over frames (<= 2 cm), checked by `perception eval`.
            assert err < 0.025, f"{oid} off by {err:.3f} m"
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


def _perception_cli() -> typer.Typer:
    from agent.commands_perception import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


def test_commands_show_and_eval(tmp_path) -> None:
    app = _perception_cli()
    runner = CliRunner()
    png = tmp_path / "det.png"
    result = runner.invoke(app, ["perception", "show", "kitchen", "--seed", "1", "--out", str(png)])
    assert result.exit_code == 0, result.output
    assert png.exists() and png.stat().st_size > 1000
    result = runner.invoke(app, ["perception", "eval", "--frames", "4", "--scenario", "kitchen", "--robustness-frames", "0"])
    assert result.exit_code in (0, 1), result.output
    assert "Localisation" in result.output and "precision/recall" in result.output
    result = runner.invoke(app, ["perception", "show", "no_such_room"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["perception", "fit-colours", "--scenes", "0"])
    assert result.exit_code == 2 and "--scenes" in result.output


@pytest.mark.slow
def test_fit_colours_with_the_defaults_reproduces_the_shipped_table(tmp_path) -> None:
    from perception.colours import ColourTable

    out = tmp_path / "lut.npz"
    result = CliRunner().invoke(_perception_cli(), ["perception", "fit-colours", "--out", str(out)])
    assert result.exit_code == 0, result.output
    fitted, shipped = ColourTable.load(out), ColourTable.load()
    assert np.array_equal(fitted.table, shipped.table)
    assert np.array_equal(fitted.counts, shipped.counts)


# -- holding, in and given from tracking (tracker-level, no rendering) ---------------------------------
def _frames_with_hand(site_pos, opening: float, side: str = "left"):
    from scenarios.kinematics import Pose, RobotFrames

    site = Pose(np.asarray(site_pos, dtype=float), np.eye(3))
    other = "right" if side == "left" else "left"
    return RobotFrames(base=(0.0, 0.0, 0.0), head_camera=site, wrist_cameras={}, grasp_sites={side: site, other: Pose(np.array([0.0, -2.0, 1.0]), np.eye(3))},
                       gripper_opening={side: opening, other: 0.1}, geoms=None)  # type: ignore[arg-type]


def _cup_track(tracker, pos):
    t = tracker.tracks["red_cup"]
    t.position, t.confidence, t.visible = np.asarray(pos, dtype=float), 0.95, True
    return t


def test_holding_needs_the_gripper_closed_to_the_objects_width() -> None:
    from perception.static_map import StaticMap
    from perception.tracking import Tracker
    from scenarios.loading import load_scenario

    sc = load_scenario("distractors")
    static = StaticMap.from_scenario(sc)
    tracker = Tracker({o.id: (o.category, o.colour) for o in sc.objects})
    site = [0.5, 0.2, 1.0]
    _cup_track(tracker, site)
    tracker._grasps(_frames_with_hand(site, 0.005))  # closed past a cup: nothing between the pads
    assert tracker.tracks["red_cup"].held_side is None
    tracker._grasps(_frames_with_hand(site, 0.064))  # closed on a cup's width
    assert tracker.tracks["red_cup"].held_side == "left"
    # The hand moves with it: the track follows.
    tracker.predict(_frames_with_hand([0.6, 0.1, 1.1], 0.064), 1.0, static, {})
    assert tracker.tracks["red_cup"].position == pytest.approx([0.6, 0.1, 1.1])
    # The fingers close further: the cup slipped out; no longer held, less sure where it is.
    tracker.predict(_frames_with_hand([0.6, 0.1, 1.1], 0.02), 1.1, static, {})
    t = tracker.tracks["red_cup"]
    assert t.held_side is None and t.confidence < 0.6


def test_released_over_the_bin_is_believed_in_it_and_over_the_palm_given() -> None:
    from perception.predicates import object_predicates
    from perception.static_map import StaticMap
    from perception.tracking import RELEASED_CONFIDENCE, Tracker, hand_at
    from scenarios.loading import load_scenario

    sc = load_scenario("distractors")
    static = StaticMap.from_scenario(sc)
    bin_xy = sc.furniture_by_id()["bin"].pos
    tracker = Tracker({o.id: (o.category, o.colour) for o in sc.objects})
    above_bin = [bin_xy[0], bin_xy[1], 0.4 + 0.2]
    _cup_track(tracker, above_bin)
    tracker._grasps(_frames_with_hand(above_bin, 0.064))
    tracker.predict(_frames_with_hand(above_bin, 0.1), 1.0, static, {})  # the gripper opens over the opening
    t = tracker.tracks["red_cup"]
    t.visible = False
    assert t.held_side is None and t.landed_in == "bin" and t.position[2] < 0.2
    preds = object_predicates(t, static, {})
    assert 0.5 < preds["in(red_cup, bin)"] <= 0.95 * RELEASED_CONFIDENCE + 1e-9  # believed, moderately
    assert preds["on(red_cup, table)"] < 0.5 and preds["on(red_cup, floor)"] < 0.5
    # Released above the table instead: it lands on the table, not in the bin.
    above_table = [0.6, 0.0, 1.0]
    _cup_track(tracker, above_table)
    tracker._grasps(_frames_with_hand(above_table, 0.064))
    tracker.predict(_frames_with_hand(above_table, 0.1), 2.0, static, {})
    t = tracker.tracks["red_cup"]
    assert t.resting_on == "table" and object_predicates(t, static, {})["in(red_cup, bin)"] < 0.5
    # Released onto a palm: given.
    palm = np.array([1.7, -0.9, 1.0])
    _cup_track(tracker, palm + [0, 0, 0.06])
    tracker._grasps(_frames_with_hand(palm + [0, 0, 0.06], 0.064))
    tracker.predict(_frames_with_hand(palm + [0, 0, 0.06], 0.1), 3.0, static, {"person_1": palm})
    t = tracker.tracks["red_cup"]
    assert object_predicates(t, static, {"person_1": palm})["given(red_cup, person_1)"] > 0.5
    # ... but only once the fingers are off it, as ground truth's `given` says.
    at_cup = {"left": palm + [0, 0, 0.06], "right": np.array([0.0, -2.0, 1.0])}
    withdrawn = {"left": palm + [0, 0, 0.18], "right": np.array([0.0, -2.0, 1.0])}
    preds = object_predicates(t, static, {"person_1": palm}, hand_at(t, at_cup))
    assert preds["given(red_cup, person_1)"] < 0.5 and preds["holding(red_cup)"] < 0.5
    assert hand_at(t, at_cup) == "left" and hand_at(t, withdrawn) is None
    assert object_predicates(t, static, {"person_1": palm}, hand_at(t, withdrawn))["given(red_cup, person_1)"] > 0.5


def test_an_object_gripped_but_still_on_the_table_is_not_held_yet() -> None:
    """Ground truth's `holding` is gripped and resting on nothing: fingers closed on a box that
    still stands on the table (a learned pick that never lifts) are not a finished pick. Once
    lifted it is held until let go, also when set back down with the fingers still round it
    (a release not finished yet: a retried place starts from what it holds)."""
    from perception.predicates import object_predicates
    from perception.static_map import StaticMap
    from perception.tracking import Tracker
    from scenarios.catalog import CATEGORIES
    from scenarios.loading import load_scenario

    static = StaticMap.from_scenario(load_scenario("distractors"))
    table = static.support_below(np.array([0.6, 0.0]), 2.0)
    standing = np.array([0.6, 0.0, table.z + CATEGORIES["cup"].height() / 2])
    tracker = Tracker({"red_cup": ("cup", "red")})
    _cup_track(tracker, standing)
    tracker._grasps(_frames_with_hand(standing, 0.064))
    t = tracker.tracks["red_cup"]
    tracker.predict(_frames_with_hand(standing, 0.064), 0.5, static, {})
    assert t.held_side == "left" and table.owner == "table"
    assert object_predicates(t, static, {})["holding(red_cup)"] < 0.5
    tracker.predict(_frames_with_hand(standing + [0, 0, 0.08], 0.064), 1.0, static, {})  # lifted 8 cm
    assert object_predicates(t, static, {})["holding(red_cup)"] > 0.5
    tracker.predict(_frames_with_hand(standing, 0.064), 1.5, static, {})  # set back down, still gripped
    assert object_predicates(t, static, {})["holding(red_cup)"] > 0.5


def test_a_slipped_object_falls_from_the_hand_and_a_hidden_one_is_still_at_it() -> None:
    """A track that slipped out of closing fingers falls from the hand, as a released one does,
    so it does not stay "at the hand" unseen; an object the fingers are at stays at the hand
    when the hand hides it from the camera (unseen is no evidence the fingers left)."""
    from perception.static_map import StaticMap
    from perception.tracking import Tracker, hand_at
    from scenarios.loading import load_scenario

    static = StaticMap.from_scenario(load_scenario("distractors"))
    tracker = Tracker({"red_cup": ("cup", "red")})
    at = [0.6, 0.0, 1.0]  # over the table
    _cup_track(tracker, at)
    tracker._grasps(_frames_with_hand(at, 0.064))
    t = tracker.tracks["red_cup"]
    sites = {"left": np.asarray(at), "right": np.array([0.0, -2.0, 1.0])}
    assert hand_at(t, sites) == "left"  # held
    tracker.predict(_frames_with_hand(at, 0.005), 1.0, static, {})  # closed past it: a slip
    t.visible = False
    assert t.held_side is None and t.resting_on == "table" and t.position[2] < 0.9
    assert hand_at(t, sites) is None and t.confidence < 0.6
    t.position, t.visible = np.asarray(at, dtype=float), True  # seen again between the fingers
    assert hand_at(t, sites) == "left"
    t.visible = False  # and then hidden by the hand: still at it
    assert hand_at(t, sites) == "left"

def test_place_in_bin_and_handover_as_the_skills_do(distractors: SimWorld) -> None:
    """The real motion: carried to the bin / the palm, let go, looked at; belief agrees with ground truth."""
    from perception.evaluation import Episode, Report, atoms, deliver, take_into_hand

    # The red can lands on its side among three other red things' tracks: still the can.
    for kind, oid, seed in (("bin", "green_cup", 5), ("palm", "red_cup", 6), ("bin", "red_can", 3)):
        distractors.reset(seed=seed)
        perception = Perception.for_world(distractors)
        ep = Episode(distractors, perception, Report("t"), atoms(distractors), np.random.default_rng(seed), None, 100)
        _look(distractors, perception, times=2)
        take_into_hand(ep, oid, "left")
        assert distractors.holds(f"holding({oid})") and ep.belief.holds(f"holding({oid})")[0]
        assert deliver(ep, oid, "left", kind)
        pred = f"in({oid}, bin)" if kind == "bin" else f"given({oid}, person_1)"
        assert distractors.holds(pred), pred
        assert ep.belief.holds(pred)[0], (pred, ep.belief.predicates.get(pred))
        assert not ep.belief.holds(f"holding({oid})")[0]


def test_colour_table_answers_only_the_scenes_foreground_colours() -> None:
    """The shaded side of an orange ball is the colour of a brown table; where no object is
    brown (the table is removed as static), that shade must read orange."""
    from perception.colours import CLASS_INDEX, CLASSES, UNKNOWN, ColourTable
    from perception.perception import foreground_colours
    from scenarios.loading import load_scenario

    full = ColourTable.load()
    dark_orange = np.array([[96, 58, 23], [103, 58, 22]], dtype=np.uint8)  # measured on a shaded orange ball
    assert set(full.classify(dark_orange)) == {CLASS_INDEX["brown"]}
    names = foreground_colours(load_scenario("kitchen"))
    assert "orange" in names and "brown" not in names
    kitchen = full.restricted_to(names)
    assert set(kitchen.classify(dark_orange)) == {CLASS_INDEX["orange"]}
    answered = {CLASSES[i] for i in np.unique(kitchen.table) if i != UNKNOWN}
    assert answered <= names
    with pytest.raises(ValueError, match="mauve"):
        full.restricted_to({"orange", "mauve"})


def test_a_piece_of_an_object_does_not_pull_another_track_across_the_room() -> None:
    """A finger across a held red can splits it into two red segments: the second one must
    not take over the red box's track on the table. A red cup-shaped thing seen far away
    while the cup is believed on the table with confidence is another object (a shaded orange
    ball read red, session 18); once its old place has been seen empty (the confidence has
    decayed), a red cup seen elsewhere is the cup, moved."""
    from perception.tracking import Tracker
    from scenarios.loading import load_scenario

    sc = load_scenario("distractors")
    tracker = Tracker({o.id: (o.category, o.colour) for o in sc.objects})
    for k, t in enumerate(tracker.tracks.values()):  # all seen on the table
        t.position, t.confidence = np.array([0.6 + 0.1 * (k % 3), -0.3 + 0.1 * k, 0.8]), 0.99
    can = tracker.tracks["red_can"]
    can.position = np.array([0.5, 1.1, 1.0])
    pieces = [_detection("red", "can", [0.5, 1.1, 1.0]), _detection("red", "can", [0.52, 1.15, 1.0])]
    matches = tracker.associate(pieces, np.zeros(3), None)
    assert matches.get("red_can") in pieces and set(matches) == {"red_can"}
    _cup_track(tracker, [0.55, 0.0, 0.8])
    moved = _detection("red", "cup", [1.6, 1.2, 0.8])
    assert tracker.associate([moved], np.zeros(3), None).get("red_cup") is moved


def test_a_far_detection_is_not_an_object_whose_place_is_out_of_view() -> None:
    """The head turned to a counter 1.9 m from the red cup and read a shaded orange ball red and
    cup-shaped (session 18): with the cup's place on the table out of view, that is not the cup;
    with its place in view (where it would be seen gone), or once its confidence has decayed, a
    red cup seen there is the cup, moved."""
    from perception.tracking import Tracker
    from scenarios.kinematics import pinhole_intrinsics
    from scenarios.loading import load_scenario

    sc = load_scenario("kitchen")
    tracker = Tracker({o.id: (o.category, o.colour) for o in sc.objects})
    K = pinhole_intrinsics(65.0, 240, 320)
    far = _detection("red", "cup", [0.95, 1.9, 0.92])
    at_counter = _camera([0.33, -0.08, 1.5], [0.95, 1.9, 0.92])  # the table at (0.83, 0.13) behind its right edge
    at_table = _camera([0.33, -0.08, 1.5], [0.95, 0.9, 0.85])  # both in the picture
    cup = _cup_track(tracker, [0.83, 0.13, 0.8])
    assert "red_cup" not in tracker.associate([far], at_counter.pos, None, view=(K, at_counter))
    assert tracker.associate([far], at_table.pos, None, view=(K, at_table)).get("red_cup") is far
    cup.confidence = 0.15  # its place seen empty
    assert tracker.associate([far], at_counter.pos, None, view=(K, at_counter)).get("red_cup") is far


def _detection(colour: str, category: str, position: list[float]):
    from perception.detection import Detection
    from perception.static_map import Surface

    pos = np.asarray(position, dtype=float)
    costs = {c: 0.0 for c in ("cup", "can", "box", "ball", "bottle")}
    det = Detection(colour, pos, float(pos[2]) + 0.05, float(pos[2]) - 0.05, Surface("floor", 0.0, np.zeros(2), 0.0, np.ones(2)), False,
                    costs, np.zeros((20, 2), dtype=int), pos[:2].copy(), np.tile(pos, (20, 1)), category)
    det.cache.update({c: pos for c in costs})
    return det


def test_a_low_top_is_a_lying_object_not_one_sunk_into_the_floor() -> None:
    """A bottle lying in a bin shows its side, 7 cm up, not its cap: read as standing, its centre
    would be 4 cm under the floor and the bin's `in` would never hold."""
    from perception.detection import LOWEST_CENTRE, rough_position

    det = _detection("blue", "bottle", [0.3, 1.2, 0.02])  # top at 0.07 m, not resting on a surface
    assert rough_position(det, "bottle")[2] == pytest.approx(LOWEST_CENTRE["bottle"]) == pytest.approx(0.033)
    high = _detection("blue", "bottle", [0.3, 1.2, 0.9])  # held up high: the cap's height decides, as before
    assert rough_position(high, "bottle")[2] == pytest.approx(0.95 - 0.118)


def test_an_object_on_a_palm_is_given_standing_or_toppled() -> None:
    from perception.tracking import rests_on_palm

    palm = np.array([1.7, -0.9, 1.0])
    assert rests_on_palm("bottle", palm + [0.02, 0.0, 0.11], palm)  # standing: centre a half-height up
    assert rests_on_palm("bottle", palm + [0.0, 0.03, 0.034], palm)  # lying on its side: a radius up
    assert rests_on_palm("cup", palm + [0.0, 0.0, 0.05], palm)
    assert not rests_on_palm("cup", palm + [0.0, 0.0, -0.04], palm)  # below the palm: fell past it
    assert not rests_on_palm("cup", palm + [0.0, 0.0, 0.3], palm)  # well above it: still in a hand
    assert not rests_on_palm("cup", palm + [0.15, 0.0, 0.05], palm)  # beside it


def test_a_held_object_is_not_matched_to_something_of_its_colour_on_the_table() -> None:
    """The red ball is in the hand; a sliver of the red can on the table that looks ball-shaped
    must not take the ball's track out of the hand."""
    from perception.tracking import Tracker
    from scenarios.loading import load_scenario

    sc = load_scenario("distractors")
    tracker = Tracker({o.id: (o.category, o.colour) for o in sc.objects})
    for k, t in enumerate(tracker.tracks.values()):  # all seen on the table
        t.position, t.confidence = np.array([0.6 + 0.1 * (k % 3), -0.3 + 0.1 * k, 0.8]), 0.99
    hand = [0.34, 0.12, 1.05]
    ball = tracker.tracks["red_ball"]
    ball.position, ball.confidence = np.asarray(hand), 0.99
    tracker._grasps(_frames_with_hand(hand, 0.07))
    assert ball.held_side == "left"
    sliver = _detection("red", "ball", [0.77, 0.08, 0.79])
    assert "red_ball" not in tracker.associate([sliver], np.zeros(3), None)
    in_hand = _detection("red", "ball", [0.35, 0.12, 1.04])
    assert tracker.associate([in_hand], np.zeros(3), None).get("red_ball") is in_hand


@pytest.mark.parametrize("scenario, oid, where, seeds", [
    ("distractors", "red_can", "bin", (3, 5)),  # red like the ball and the box, no lid on top
    ("distractors", "blue_cup", "bin", (3,)),  # no dark opening on top, like a bottle without its cap
    ("tidy_table", "blue_can", "table", (3, 4)),  # as high as it is wide
])
def test_an_object_lying_on_its_side_is_still_itself(scenario: str, oid: str, where: str, seeds: tuple[int, ...]) -> None:
    """Dropped into a bin or toppled on a table, an object lies on its side: the cues for an
    upright one (a can's light lid and height, a cup's dark opening) are gone. A lying can's
    long, narrow footprint says can, a lying cup's short one says it is no can or bottle; the
    belief must place the object itself, not give the detection to another object's track."""
    import math

    from perception.evaluation import _qadr, set_base

    world = SimWorld(scenario)
    try:
        for seed in seeds:
            world.reset(seed=seed)
            perception = Perception.for_world(world)
            _look(world, perception, times=3)  # every object seen where it starts
            adr = _qadr(world, f"{oid}/joint")
            yaw = 0.7 * seed
            c, s = math.cos(yaw / 2), math.sin(yaw / 2)
            k = math.sqrt(0.5)  # (yaw about z) * (90 degrees about x): lying on its side
            world.data.qpos[adr + 3:adr + 7] = (c * k, c * k, s * k, s * k)
            if where == "bin":
                b = next(f for f in world.scenario.furniture if f.kind == "bin")
                world.data.qpos[adr:adr + 3] = (b.pos[0], b.pos[1], 0.08)
                # moved by hand, out of the robot's sight: its place on the table is seen empty first
                # (an object believed somewhere unseen is not matched to one across the room)
                _look(world, perception, times=3)
                set_base(world, b.pos[0] - 0.6, b.pos[1], 0.0)
                tilt = 0.9
            else:
                x, y, z = world.privileged_state().objects[oid].pos
                world.data.qpos[adr:adr + 3] = (x, y, z - 0.02)
                tilt = 0.75
            hold(world, 30)
            predicate = f"{'in' if where == 'bin' else 'on'}({oid}, {where})"
            assert world.holds(predicate)
            belief = _look(world, perception, tilt=tilt, times=6)
            assert belief.holds(predicate)[0], (seed, predicate, belief.predicates.get(predicate))
            if where == "bin":  # and nothing else is believed to have landed there
                wrong = [p for p, v in belief.predicates.items() if p.startswith("in(") and p.endswith(", bin)") and p != predicate and v >= 0.6]
                assert not wrong, wrong
    finally:
        world.close()


def test_only_a_long_narrow_footprint_reads_as_a_lying_can() -> None:
    from perception.detection import _lying_cylinder

    rng = np.random.default_rng(0)

    def patch(length: float, width: float, yaw: float) -> np.ndarray:
        u = rng.uniform(-0.5, 0.5, (300, 2)) * (length, width)
        c, s = np.cos(yaw), np.sin(yaw)
        xy = u @ np.array([[c, s], [-s, c]]) + (0.4, 1.2)
        return np.column_stack([xy, rng.uniform(0.03, 0.07, 300)])

    assert _lying_cylinder(patch(0.12, 0.055, 0.7))  # a lying can's top, seen above the walls
    assert not _lying_cylinder(patch(0.07, 0.07, 0.0))  # a ball
    assert not _lying_cylinder(patch(0.10, 0.06, 1.1))  # a box on its largest face
    assert not _lying_cylinder(patch(0.10, 0.08, 0.0))  # a lying cup
    assert not _lying_cylinder(patch(0.12, 0.055, 0.0)[:5])  # too few points to say


# -- misses that walls explain (tracker-level, no rendering) ------------------------------------------
def _camera(eye, target):
    """A head camera at `eye` looking at `target` (MuJoCo's camera frame: x right, y up, looking along -z)."""
    from scenarios.kinematics import Pose

    eye, target = np.asarray(eye, dtype=float), np.asarray(target, dtype=float)
    ahead = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(ahead, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return Pose(eye, np.column_stack([right, np.cross(right, ahead), -ahead]))


def _watch_without_detections(tracker, static, oid: str, cam, frames: int, start: float = 10.0):
    """`frames` head frames (20 a second) that look at the track's estimate and detect nothing;
    the depth there is the object's own near side, so nothing nearer hides it."""
    from perception.geometry import project
    from scenarios.kinematics import pinhole_intrinsics

    K = pinhole_intrinsics(65.0, 240, 320)
    hands = _frames_with_hand([0.0, -2.0, 1.0], 0.1)  # both hands away and open
    for k in range(frames):
        time = start + 0.05 * k
        tracker.predict(hands, time, static, {})
        _, z = project(K, cam, tracker.tracks[oid].position[None])
        depth = np.full((240, 320), float(z[0]) - 0.03, dtype=np.float32)
        tracker.update({}, cam.pos, hands, K, cam, depth, time, static)
    return tracker.tracks[oid]


def _can_dropped_by_the_near_wall(static):
    """The tidy table's blue can let go over the bin, 7 cm inside the wall nearest the robot
    (which stands beside the bin): it lands upright on the bin's floor, believed in it."""
    from perception.tracking import Tracker

    tracker = Tracker({"blue_can": ("can", "blue")})
    over = [0.38, -1.115, 0.6]
    t = tracker.tracks["blue_can"]
    t.position, t.confidence = np.asarray(over, dtype=float), 0.95
    tracker._grasps(_frames_with_hand(over, 0.064))
    tracker.predict(_frames_with_hand(over, 0.1), 1.0, static, {})  # the gripper opens over the opening
    assert t.held_side is None and t.landed_in == "bin"
    return tracker, t


def _extent(t):
    from perception.tracking import extent_points

    return extent_points(t.category, t.position)


def test_an_object_in_a_bin_behind_its_wall_stays_in_it_unseen() -> None:
    """From beside the bin the head looks down over the near wall: the wall hides the lower part
    of a can dropped close to it, and above the wall shows its white lid, not its blue (seed 3 of
    the expert's tidy lost the can this way, a miss halving it every frame). Not seeing it there
    is no evidence it has gone: it stays in the bin. Looked at straight down through the
    opening, where all of it would show, a miss counts as anywhere else."""
    from perception.predicates import object_predicates
    from perception.static_map import StaticMap
    from scenarios.loading import load_scenario

    static = StaticMap.from_scenario(load_scenario("tidy_table"))
    beside = _camera([0.17, -1.16, 1.3], [0.38, -1.115, 0.07])  # where the robot's head was in seed 3
    tracker, t = _can_dropped_by_the_near_wall(static)
    assert static.walls_hide([[0.345, -1.115, 0.05]], beside.pos)[0]  # the can's near side, low down
    t = _watch_without_detections(tracker, static, "blue_can", beside, 200)  # 10 s
    assert t.misses == 0
    assert object_predicates(t, static, {})["in(blue_can, bin)"] > 0.6
    above = _camera([0.5, -1.1, 1.3], [0.38, -1.115, 0.07])  # over the bin's middle: all of it in sight
    assert not static.walls_hide(_extent(t), above.pos).any()
    t = _watch_without_detections(tracker, static, "blue_can", above, 5, start=20.0)
    assert t.misses == 5 and object_predicates(t, static, {})["in(blue_can, bin)"] < 0.5


def test_an_object_on_the_open_table_that_is_not_seen_in_view_decays() -> None:
    """The bins' walls excuse only what they hide: a can believed on the table, in plain view
    and not detected, has gone (it was moved) and soon stops being believed there."""
    from perception.predicates import object_predicates
    from perception.static_map import StaticMap
    from perception.tracking import Tracker
    from scenarios.loading import load_scenario

    static = StaticMap.from_scenario(load_scenario("tidy_table"))
    table = static.support_below(np.array([0.6, 0.2]), 2.0)
    tracker = Tracker({"blue_can": ("can", "blue")})
    t = tracker.tracks["blue_can"]
    t.position, t.confidence, t.resting_on = np.array([0.6, 0.2, table.z + 0.061]), 0.95, "table"
    assert table.owner == "table" and object_predicates(t, static, {})["on(blue_can, table)"] > 0.6
    t = _watch_without_detections(tracker, static, "blue_can", _camera([0.0, 0.0, 1.3], t.position), 5)
    assert t.misses == 5 and object_predicates(t, static, {})["on(blue_can, table)"] < 0.5


def test_an_object_in_a_bin_seen_elsewhere_has_been_taken_out() -> None:
    """Unseen in the bin it stays believed there, but not frozen: a blue can seen on the table
    is that can, taken out again."""
    from perception.predicates import object_predicates
    from perception.static_map import StaticMap
    from scenarios.kinematics import pinhole_intrinsics
    from scenarios.loading import load_scenario

    static = StaticMap.from_scenario(load_scenario("tidy_table"))
    beside = _camera([0.17, -1.16, 1.3], [0.38, -1.115, 0.07])
    tracker, t = _can_dropped_by_the_near_wall(static)
    t = _watch_without_detections(tracker, static, "blue_can", beside, 40)
    assert object_predicates(t, static, {})["in(blue_can, bin)"] > 0.6
    table = static.support_below(np.array([0.6, 0.2]), 2.0)
    seen = _detection("blue", "can", [0.6, 0.2, table.z + 0.061])
    hands = _frames_with_hand([0.0, -2.0, 1.0], 0.1)
    matches = tracker.associate([seen], beside.pos, hands)
    assert matches.get("blue_can") is seen
    tracker.update(matches, beside.pos, hands, pinhole_intrinsics(65.0, 240, 320), beside, np.full((240, 320), 3.0), 13.0, static)
    preds = object_predicates(t, static, {})
    assert t.position == pytest.approx(seen.position) and t.visible
    assert preds["in(blue_can, bin)"] < 0.5 and preds["on(blue_can, table)"] > 0.6
