"""The navigation goal a learned `navigate_to` is conditioned on.

A reactive image policy has no map: told "go to the cup", it cannot know that the best
place to stand is the far side of the table, nor on which side to pass it, and the
expert's demonstrations (A* on the true layout) went left or right by geometry the images
barely show. Goal-conditioned navigation policies (ViNT, NoMaD) solve this by giving the
policy a subgoal; so does this project. During `navigate_to` the VLA reads
`observation.environment_state` (LeRobot's key for non-image environment features):

    goal.valid                      1 during navigate_to, else every entry is 0
    goal.waypoint.x, .y             the route point LOOKAHEAD_M ahead, robot base frame (m)
    goal.pose.x, .y                 where the base should stop, robot base frame (m)
    goal.pose.cos_yaw, .sin_yaw     its heading relative to the robot's

In training the entries are relabelled in hindsight from the episode's own base poses
(where the expert stopped, where it was once LOOKAHEAD_M further on), so recorded data
needs no new fields. At run time they come from what the robot knows: perception's belief
(the target's position, people, what rests where) and the static map (the furniture the
robot is given), planned by the expert's own approach-pose and A* routines. Nothing here
reads the simulator's ground truth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from perception.belief import Belief
from policy.expert.geometry import to_base, wrap
from policy.expert.navigation import NavigationError
from policy.expert.targets import ApproachPose
from policy.manipulation_target import TARGET_NAMES, TARGET_SKILLS, ManipulationTarget
from policy.vla.configuration_vla import ENV_KEY
from scenarios.ground_truth import FurnitureTruth, ObjectTruth, PersonTruth, PrivilegedState, RobotTruth
from scenarios.robot import SIDES
from scenarios.schema import Scenario

GOAL_KEY = ENV_KEY
GOAL_NAMES = ("goal.valid", "goal.waypoint.x", "goal.waypoint.y", "goal.pose.x", "goal.pose.y",
              "goal.pose.cos_yaw", "goal.pose.sin_yaw")
GOAL_DIM = len(GOAL_NAMES)
ENV_NAMES = GOAL_NAMES + TARGET_NAMES  # what a policy with the manipulation target reads
ENV_DIM = len(ENV_NAMES)
GOAL_SKILLS = ("navigate_to",)
LOOKAHEAD_M = 0.6  # m: far enough to say which way round an obstacle, near enough to stay on the route
ROUTE_STEP_M = 0.05  # m between the route's resampled points
REPLAN_TARGET_M = 0.15  # replan when the target's believed position moved this far
REPLAN_OFF_ROUTE_M = 0.45  # ... or the robot strayed this far from the route
# Believed distance and heading from the goal pose that count as there. Tighter than the 5 cm it
# was: the kitchen's serve starts 7 cm behind its approach pose, a drive ended at once within
# 5 cm, and the learned pick from 5 cm short of the pose knocked the cup over.
# Outside them the drive is not over even when the base stands still: a learned drive slows to
# a creep centimetres from the pose, and ending it on stillness left the kitchen's carrying drives
# a median 5.6 cm from the person's approach pose (3.2 cm when it drives on; docs/figures/
# policy_eval_session12.md). The tree still ends it `learned_arrive_max_s` after `near` holds.
ARRIVED_M, ARRIVED_RAD = 0.025, 0.1
# A pose reached only by sliding sideways into a slot (the tidy table's south side, between a
# table leg and the bin: 3.5 cm to spare) costs as much as ~7 m more of route: the expert
# threads it on its path follower, a learned drive wedged itself there (session 19, tidy seed 0).
SLIDE_COST = 2.0


def at_pose(dist: float, turn: float) -> bool:
    """Whether a base `dist` m and `turn` rad from a goal pose counts as there (the tree's
    arrival, and what `policy eval` counts as a precise stop)."""
    return dist <= ARRIVED_M and turn <= ARRIVED_RAD


def encode(base: tuple[float, float, float] | np.ndarray, waypoint: np.ndarray, pose: tuple[float, float, float]) -> np.ndarray:
    """The goal vector for a robot at `base` (world x, y, yaw): see the module docstring."""
    w = to_base(tuple(base), waypoint[:2])
    g = to_base(tuple(base), np.asarray(pose[:2]))
    dyaw = wrap(pose[2] - base[2])
    return np.array([1.0, w[0], w[1], g[0], g[1], math.cos(dyaw), math.sin(dyaw)], dtype=np.float32)


def hindsight_goals(base_poses: np.ndarray, lookahead: float = LOOKAHEAD_M) -> np.ndarray:
    """(N, GOAL_DIM) goals for one recorded drive from its base poses (N, 3): the goal pose is
    where the episode stopped, the waypoint the first later pose at least `lookahead` away."""
    poses = np.asarray(base_poses, dtype=np.float64)
    n = len(poses)
    out = np.zeros((n, GOAL_DIM), np.float32)
    if n == 0:
        return out
    final = tuple(poses[-1])
    xy = poses[:, :2]
    for i in range(n):
        far = np.nonzero(np.linalg.norm(xy[i + 1:] - xy[i], axis=1) >= lookahead)[0]
        waypoint = xy[i + 1 + far[0]] if len(far) else xy[-1]
        out[i] = encode(poses[i], waypoint, final)
    return out


def believed_state(scenario: Scenario, belief: Belief) -> PrivilegedState:
    """The room as the robot believes it, in the shape the expert's geometry reads: furniture
    from the static map (the scenario), people, objects and what holds from the belief.
    Objects never seen are absent; believed objects are upright."""
    def believed(text: str) -> bool:
        return belief.holds(text)[0]

    furniture_ids = [f.id for f in scenario.furniture]
    closed = [s for s in SIDES if belief.robot.gripper_closed.get(s)]
    holding: dict[str, str | None] = {s: None for s in SIDES}
    objects: dict[str, ObjectTruth] = {}
    for oid, ob in belief.objects.items():
        held_by = next((s for s in closed if holding[s] is None), None) if believed(f"holding({oid})") else None
        if held_by is not None:
            holding[held_by] = oid
        rests = next((f for f in furniture_ids if believed(f"on({oid}, {f})")), None)
        inside = next((f for f in furniture_ids if believed(f"in({oid}, {f})")), None)
        if rests is None and held_by is None and inside is None and ob.position[2] < 0.15:
            rests = "floor"
        objects[oid] = ObjectTruth(id=oid, pos=ob.position, quat=(1.0, 0.0, 0.0, 0.0), speed=0.0, held_by=held_by,
                                   rests_on=rests or inside, inside=inside)
    people = {}
    for p in scenario.people:
        seen = belief.people.get(p.id)
        pos = seen.position if seen is not None else p.pos
        hand = seen.hand if seen is not None and seen.hand is not None else p.hand_position()
        # rounded: the expert's occupancy grids are cached by obstacle positions
        people[p.id] = PersonTruth(id=p.id, pos=tuple(round(v, 2) for v in pos), hand=tuple(round(v, 2) for v in hand))
    return PrivilegedState(
        time=belief.time,
        robot=RobotTruth(base=belief.robot.pose, grasp_sites={}, holding=holding),
        objects=objects,
        furniture={f.id: FurnitureTruth(id=f.id, pos=f.pos, yaw=f.yaw, size=f.dims) for f in scenario.furniture},
        people=people,
    )


class Route:
    """Where to stop and the way there, resampled every ROUTE_STEP_M (world frame)."""

    def __init__(self, pose: ApproachPose, points: list[np.ndarray]) -> None:
        self.pose = pose
        pts = [np.asarray(p[:2], float) for p in points] + [pose.xy]
        dense = [pts[0]]
        for a, b in zip(pts, pts[1:]):
            n = max(1, int(math.ceil(np.linalg.norm(b - a) / ROUTE_STEP_M)))
            dense.extend(a + (b - a) * t for t in np.linspace(0, 1, n + 1)[1:])
        self.points = np.array(dense)

    def distance_from(self, xy: np.ndarray) -> float:
        return float(np.min(np.linalg.norm(self.points - xy, axis=1)))

    def waypoint(self, xy: np.ndarray, lookahead: float = LOOKAHEAD_M) -> np.ndarray:
        """The first route point after the closest one that is at least `lookahead` away."""
        d = np.linalg.norm(self.points - xy, axis=1)
        after = np.arange(len(self.points)) > int(np.argmin(d))
        far = np.nonzero(after & (d >= lookahead))[0]
        return self.points[far[0]] if len(far) else self.points[-1]


def plan_route(scenario: Scenario, state: PrivilegedState, target: str, dt: float = 0.05) -> Route | None:
    """The expert's choice of approach pose and path (`NavigateTo.plan`) in `state`; None if none."""
    from policy.expert.skills import Context, NavigateTo

    nav = NavigateTo(target=target, slide_cost=SLIDE_COST)
    ctx = Context(scenario=scenario, state=state, ee={}, opening={}, cmd=None, dt=dt, visible=lambda: ())  # type: ignore[arg-type]
    try:
        nav.plan(ctx)
    except (NavigationError, KeyError):
        return None
    if nav.failure or nav.pose is None or nav.follower is None:
        return None
    points = list(nav.follower.waypoints) + (list(nav.entry[1:]) if nav.entry else [])
    return Route(nav.pose, points)


class NavigationGoal:
    """The goal vector for one `navigate_to(target)`, replanned as the belief changes."""

    def __init__(self, scenario: Scenario, target: str) -> None:
        self.scenario = scenario
        self.target = target
        self.route: Route | None = None
        self._planned_at: np.ndarray | None = None

    def _target_xy(self, belief: Belief) -> np.ndarray | None:
        if self.target in belief.objects:
            return np.asarray(belief.objects[self.target].position[:2])
        if self.target in belief.people:
            return np.asarray(belief.people[self.target].position)
        furniture = self.scenario.furniture_by_id().get(self.target)
        return np.asarray(furniture.pos) if furniture is not None else None

    def observation(self, belief: Belief | None) -> np.ndarray:
        """GOAL_DIM values; all zero while the target is not believed anywhere or no route exists."""
        if belief is None:
            return np.zeros(GOAL_DIM, np.float32)
        target = self._target_xy(belief)
        if target is None:
            return np.zeros(GOAL_DIM, np.float32)
        xy = np.asarray(belief.robot.pose[:2])
        if (self.route is None or self._planned_at is None
                or np.linalg.norm(target - self._planned_at) > REPLAN_TARGET_M
                or self.route.distance_from(xy) > REPLAN_OFF_ROUTE_M):
            route = plan_route(self.scenario, believed_state(self.scenario, belief), self.target)
            self._planned_at = target
            if route is not None:
                self.route = route
        if self.route is None:
            return np.zeros(GOAL_DIM, np.float32)
        p = self.route.pose
        return encode(belief.robot.pose, self.route.waypoint(xy), (p.x, p.y, p.yaw))


class GoalConditioned:
    """A policy with its environment state added to every observation: navigate_to's goal
    (GOAL_NAMES) and, for a policy that reads ENV_DIM entries, a manipulation's target
    (`policy.manipulation_target`).

    Wraps any policy with LeRobot's methods; the entries a skill has no use for are zero, as in
    training. `belief` returns perception's latest belief; `env_dim` is the width the policy
    reads (GOAL_DIM for checkpoints from before the manipulation target)."""

    def __init__(self, policy: Any, scenario: Scenario, skill: str, args: list[str] | tuple[str, ...],
                 belief: Callable[[], Belief | None], env_dim: int = GOAL_DIM) -> None:
        if env_dim not in (GOAL_DIM, ENV_DIM):
            raise ValueError(f"a policy reads {GOAL_DIM} or {ENV_DIM} environment-state values, not {env_dim}")
        self.policy = policy
        self.goal = NavigationGoal(scenario, args[0]) if skill in GOAL_SKILLS and args else None
        self.target = None
        if env_dim == ENV_DIM and skill in TARGET_SKILLS and args:
            from policy.expert.expert import validate_skill

            self.target = ManipulationTarget(scenario, skill, validate_skill(scenario, skill, list(args)))
        self.env_dim = env_dim
        self._belief = belief
        self._last = np.zeros(env_dim, np.float32)

    def __getattr__(self, name: str) -> Any:  # `failure`, ... of the wrapped policy, if it has them
        return getattr(self.__dict__["policy"], name)

    @property
    def arrived(self) -> bool | None:
        """For navigate_to: True once the belief puts the robot at the goal pose (ARRIVED_M,
        ARRIVED_RAD), False while it is not (a pause or a creep is not an arrival); None without a
        goal (the tree's stillness rule decides)."""
        g = self._last
        if self.goal is None or g[0] <= 0:
            return None
        dist, turn = math.hypot(g[3], g[4]), abs(math.atan2(g[6], g[5]))
        return at_pose(dist, turn)

    def _with_goal(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        env = np.zeros(self.env_dim, np.float32)
        if self.goal is not None or self.target is not None:
            belief = self._belief()
            if self.goal is not None:
                env[:GOAL_DIM] = self.goal.observation(belief)
            if self.target is not None:
                env[GOAL_DIM:] = self.target.observation(belief)
        self._last = env
        return {**obs, GOAL_KEY: env}

    def reset(self) -> None:
        self.policy.reset()

    def select_action(self, obs: Mapping[str, Any]) -> np.ndarray:
        return self.policy.select_action(self._with_goal(obs))

    def predict_action_chunk(self, obs: Mapping[str, Any]) -> np.ndarray:
        return self.policy.predict_action_chunk(self._with_goal(obs))


def with_goals(factory: Callable[[Any], Any], env_dim: int, scenario: Scenario, perception: Any) -> Callable[[Any], Any]:
    """`factory` (subtask -> policy) with every policy it makes given its environment state
    (`GoalConditioned`) from `perception`'s latest belief, when the policy reads `env_dim` > 0
    values; else `factory` itself."""
    if not env_dim or perception is None:
        return factory
    return lambda subtask: GoalConditioned(factory(subtask), scenario, subtask.skill, list(subtask.args),
                                           lambda: perception.belief, env_dim)
