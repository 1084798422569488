"""The scripted expert: validation, navigation on the grid, instructions, and skills in the kitchen."""

from __future__ import annotations

import numpy as np
import pytest

from policy.episodes import run_episode
from policy.expert import ScriptedExpert, SkillError, validate_skill
from policy.expert.navigation import OccupancyGrid
from policy.instructions import instruction, object_names
from scenarios.loading import load_scenario
from scenarios.world import SimWorld, WorldConfig

NO_CAMERAS = WorldConfig(cameras=(), head_depth=False, image_size=(120, 160))


@pytest.fixture(scope="module")
def kitchen() -> SimWorld:
    world = SimWorld("kitchen", NO_CAMERAS)
    yield world
    world.close()


def test_unknown_skill_object_or_missing_people_are_named_with_a_hint():
    sc = load_scenario("kitchen")
    with pytest.raises(SkillError, match=r"unknown skill 'pik'.*did you mean 'pick'"):
        validate_skill(sc, "pik", {"object": "red_cup"})
    with pytest.raises(SkillError, match=r"object 'red_cpu'.*did you mean 'red_cup'"):
        validate_skill(sc, "pick", {"object": "red_cpu"})
    with pytest.raises(SkillError, match="takes 2 argument"):
        validate_skill(sc, "handover", ["red_cup"])
    with pytest.raises(SkillError, match="no container"):
        validate_skill(sc, "place_in", {"object": "red_cup", "container": "bin"})
    assert validate_skill(sc, "place", ["red_cup", "counter"]) == {"object": "red_cup", "surface": "counter"}


def test_grid_path_goes_around_the_table(kitchen: SimWorld):
    kitchen.reset(seed=0)
    state = kitchen.privileged_state()
    grid = OccupancyGrid(kitchen.scenario, state)
    start, goal = np.array([0.0, 0.0]), np.array([2.0, 0.0])  # straight through the table at x = 0.5..1.5
    assert not grid.is_free(np.array([1.0, 0.0]))
    path = grid.plan(start, goal)
    dense = np.concatenate([np.linspace(a, b, 20) for a, b in zip(path, path[1:])])
    table = state.furniture["table"]
    inside = (np.abs(dense[:, 0] - table.pos[0]) < table.size[0] / 2) & (np.abs(dense[:, 1] - table.pos[1]) < table.size[1] / 2)
    assert not inside.any(), "the path never crosses the table's footprint"
    assert all(grid.is_free(p) for p in dense[5:-5])


def test_grid_graph_matches_networkx_grid_and_is_reused(kitchen: SimWorld):
    import math

    import networkx as nx

    from policy.expert.navigation import grid_for

    kitchen.reset(seed=1)
    state = kitchen.privileged_state()
    grid = grid_for(kitchen.scenario, state)
    assert grid_for(kitchen.scenario, kitchen.privileged_state()) is grid, "same obstacles: the same grid and graph"
    ref = nx.grid_2d_graph(*grid.shape)
    ref.remove_nodes_from([tuple(map(int, c)) for c in np.argwhere(~grid.free)])
    ref.add_edges_from([((i, j), (i + 1, j + dj)) for i, j in list(ref.nodes) for dj in (-1, 1) if (i + 1, j + dj) in ref])
    g = grid.graph()
    assert set(g.nodes) == set(ref.nodes) and set(map(frozenset, g.edges)) == set(map(frozenset, ref.edges))
    u, v = next(iter(g.edges))
    assert g.edges[u, v]["weight"] == pytest.approx(math.dist(u, v) * 0.5 * (grid.cost[u] + grid.cost[v]))


def test_far_cup_on_the_coffee_table_is_taken_from_the_slot_by_the_sofa():
    """living_room seed 14: the white cup sits 0.4 m in from the coffee table's open side, out of the
    arm's reach from there; the expert must stand in the slot between the table and the sofa
    (the base under the table top, between its legs) and get in and out sideways."""
    from policy.expert.clearance import body_clearance, escape_path
    from policy.expert.grasps import top_grasp_point, top_pitch
    from policy.expert.navigation import grid_for
    from policy.expert.targets import approaches
    from policy.expert.geometry import to_base

    world = SimWorld("living_room", NO_CAMERAS)
    try:
        world.reset(seed=14)
        state = world.privileged_state()
        _, pose = approaches(world.scenario, state, "white_cup")[0]
        assert pose.normal[1] > 0.9, "faces the table from the sofa's side"
        assert body_clearance(world.scenario, state, pose.x, pose.y, pose.yaw) > 0.0
        point = to_base((pose.x, pose.y, pose.yaw), top_grasp_point(world.scenario.object_by_id()["white_cup"], state.objects["white_cup"]))
        assert top_pitch(point, pose.arm, 0.0)[1], "the cup is within the arm's reach from there"
        way = escape_path(world.scenario, state, grid_for(world.scenario, state), pose.xy, pose.yaw)
        assert way is not None and len(way) == 3, "back a little, then sideways out of the slot"
        # The open side is out of reach even with the hand tipped forward.
        far = [p for c, p in approaches(world.scenario, state, "white_cup") if p.normal[1] < -0.9][0]
        far_point = to_base((far.x, far.y, far.yaw), top_grasp_point(world.scenario.object_by_id()["white_cup"], state.objects["white_cup"]))
        assert not top_pitch(far_point, far.arm, 0.0)[1]
    finally:
        world.close()


def test_instructions_name_objects_unambiguously_and_vary():
    sc = load_scenario("distractors")
    assert object_names(sc, "red_cup") == ["red cup"], "red things and cups abound: only colour+category is unambiguous"
    assert "bottle" in object_names(sc, "blue_bottle")
    rng = np.random.default_rng(0)
    texts = {instruction(sc, "pick", {"object": "red_cup"}, rng) for _ in range(30)}
    assert len(texts) >= 3 and all("red cup" in t for t in texts)
    again = np.random.default_rng(0)
    assert instruction(sc, "pick", {"object": "red_cup"}, again) == instruction(sc, "pick", {"object": "red_cup"}, np.random.default_rng(0))


def test_expert_has_the_policy_interface(kitchen: SimWorld):
    obs, _ = kitchen.reset(seed=0)
    expert = ScriptedExpert(kitchen, "pick", {"object": "red_cup"}, chunk_size=8)
    expert.reset()
    a = expert.select_action(obs)
    assert a.shape == (kitchen.action_space.shape[0],) and a.dtype == np.float32
    chunk = expert.predict_action_chunk(obs)
    assert chunk.shape == (8, a.shape[0]) and np.all(np.isfinite(chunk))
    assert kitchen.action_space.contains(np.clip(chunk[0], kitchen.action_space.low, kitchen.action_space.high))


@pytest.mark.parametrize("seed", [0, 1])
def test_pick_the_cup_in_the_kitchen(kitchen: SimWorld, seed: int):
    out = run_episode(kitchen, "pick", {"object": "red_cup"}, seed)
    assert out.success, out.reason
    assert kitchen.privileged_state().robot.holding in ({"left": "red_cup", "right": None}, {"left": None, "right": "red_cup"})


def test_actions_are_smooth_and_within_limits(kitchen: SimWorld):
    actions = []
    out = run_episode(kitchen, "pick", {"object": "yellow_box"}, 3, on_step=lambda o, a: actions.append(a))
    assert out.success, out.reason
    a = np.stack(actions)
    s = kitchen.controller.layout.slices
    dt = kitchen.control_period
    for side in ("left", "right"):
        speed = np.linalg.norm(np.diff(a[:, s[f"{side}.pos"]], axis=0), axis=1) / dt
        assert speed.max() <= 0.36, f"{side} hand target moved at {speed.max():.2f} m/s"
    assert np.all(a >= kitchen.action_space.low - 1e-6) and np.all(a <= kitchen.action_space.high + 1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("scenario,skill,args", [
    ("kitchen", "handover", {"object": "red_cup", "person": "person_1"}),
    ("tidy_table", "place_in", {"object": "red_ball", "container": "bin"}),
    ("living_room", "look_for", {"object": "blue_can"}),
    ("distractors", "place", {"object": "blue_cup", "surface": "table"}),
])
def test_skills_across_scenarios(scenario: str, skill: str, args: dict[str, str]):
    world = SimWorld(scenario, NO_CAMERAS)
    try:
        out = run_episode(world, skill, args, seed=4)
        assert out.success, out.reason
    finally:
        world.close()


@pytest.mark.slow
@pytest.mark.parametrize("skill,args", [("pick", {"object": "white_cup"}), ("place", {"object": "white_cup", "surface": "side_table"})])
def test_far_coffee_table_cup_is_picked_and_placed_past_a_tall_bottle(skill: str, args: dict[str, str]):
    world = SimWorld("living_room", NO_CAMERAS)
    try:
        out = run_episode(world, skill, args, seed=14)
        assert out.success, out.reason
        assert world.privileged_state().objects["green_bottle"].rests_on == "side_table", "the bottle still stands"
    finally:
        world.close()


@pytest.mark.slow
def test_serve_a_drink_chain():
    from policy.episodes import CHAINS, run_chain

    world = SimWorld("kitchen", NO_CAMERAS)
    try:
        out = run_chain(world, CHAINS["serve_drink"]("red_cup", "person_1"), seed=2)
        assert out.success, out.reason
        assert world.privileged_state().holds("given(red_cup, person_1)")
    finally:
        world.close()


@pytest.mark.slow
def test_look_for_searches_the_same_way_whichever_side_the_object_is_on(kitchen: SimWorld):
    """Before the first sighting, the expert's search may use only what the cameras show: it turns
    left whether the unseen object lies to the left or to the right. Turning towards the true side
    would teach a policy opposite turns for the same frames, and it would learn neither."""
    import math

    from policy.expert.skills import SEARCH_RATE

    s = kitchen.controller.layout.slices
    sides, turns = set(), []
    for seed in range(6):
        first: list[float] = []

        def on_step(obs, action, first=first) -> None:
            if not first:
                st = kitchen.privileged_state(visibility=True)
                x, y, yaw = st.robot.base
                ox, oy, _ = st.objects["red_cup"].pos
                bearing = math.atan2(math.sin(math.atan2(oy - y, ox - x) - yaw), math.cos(math.atan2(oy - y, ox - x) - yaw))
                first.extend([bearing, float(action[s["base"]][2]), float("red_cup" in st.visible)])

        out = run_episode(kitchen, "look_for", {"object": "red_cup"}, seed=seed, on_step=on_step)
        assert out.success, out.reason
        bearing, wz, seen = first
        if not seen:
            sides.add(bearing > 0)
            turns.append(wz)
    assert sides == {True, False}, "the seeds put the unseen cup on both sides"
    assert turns and all(w == pytest.approx(SEARCH_RATE) for w in turns), turns
