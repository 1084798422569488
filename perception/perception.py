"""Perception: observations (head RGB-D, wrist RGB, proprioception) → Belief.

Built from what a robot legitimately knows before it starts: the static map (room and
furniture), the inventory of objects it may meet (ids, categories, colours), people's ids
and where they were said to stand, its own body (kinematics) and camera intrinsics. Each
`update(obs)` runs: kinematics → camera pose (with the registered mount correction) →
world points → remove the static map and the robot's own body → people → objects by
colour and shape → tracking → predicates. Nothing reads the simulator's ground truth.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from perception import kernels
from perception.belief import Belief, ObjectBelief, PersonBelief, RobotBelief
from perception.colours import CLASS_INDEX, NEUTRAL, ColourTable
from perception.detection import Detection, PersonDetection, detect_objects, detect_people
from perception.geometry import CameraRegistration, RayGrid, scaled_intrinsics
from perception.predicates import object_predicates, robot_near_all
from perception.static_map import StaticMap
from perception.tracking import OPEN, Tracker, hand_at
from scenarios.kinematics import Pose, RobotFrames, RobotKinematics
from scenarios.schema import Scenario

log = structlog.get_logger(__name__)
PIXEL_STRIDE = 2
"""The head frame is read at every second pixel in each direction (a quarter of the pixels):
objects still cover tens of pixels at the table's distance, and every step costs a quarter."""


PALM_PRIOR_GATE = 0.2
"""m: a palm measured this close to the map's palm confirms the map (see Perception._palm)."""


@dataclass
class FrameDebug:
    """What the last update saw, for drawing and for tests (not part of the Belief)."""

    camera: Pose | None = None
    detections: list[Detection] = field(default_factory=list)
    matches: dict[str, Detection] = field(default_factory=dict)
    people: dict[str, PersonDetection] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)


NEIGHBOURHOOD = 8
"""Grid pixels per side of the blocks within which neutral pixels count as parts of a coloured one."""


def foreground_colours(scenario: Scenario) -> frozenset[str]:
    """Colour names a pixel left after removing the static map can have in this scene:
    its objects' colours, their parts' neutral colours, people's skin and shirts."""
    return frozenset({o.colour for o in scenario.objects} | set(NEUTRAL) | {"skin"}
                     | {p.shirt_colour for p in scenario.people})


class Perception:
    """Builds and maintains a Belief from observations only (see module docstring)."""

    def __init__(self, scenario: Scenario, proprioception_names: tuple[str, ...] | list[str], intrinsics: np.ndarray,
                 image_size: tuple[int, int] = (240, 320), colour_table: ColourTable | None = None,
                 control_period: float = 0.05) -> None:
        self.static = StaticMap.from_scenario(scenario)
        self.inventory = {o.id: (o.category, o.colour) for o in scenario.objects}
        self._by_colour: dict[str, list[str]] = {}
        for cat, col in self.inventory.values():
            self._by_colour.setdefault(col, []).append(cat)
        self.people_ids = [p.id for p in scenario.people]
        self.kinematics = RobotKinematics(tuple(proprioception_names))
        self.K = np.asarray(intrinsics, dtype=np.float64)
        self.image_size = image_size
        self.stride = PIXEL_STRIDE
        full = RayGrid.from_intrinsics(self.K, *image_size)
        self.rays = RayGrid(np.ascontiguousarray(full.rays[:: self.stride, :: self.stride]))
        self.K_grid = scaled_intrinsics(self.K, self.stride)
        self.colours = (colour_table or ColourTable.load()).restricted_to(foreground_colours(scenario))
        self._static_arrays = kernels.StaticArrays.from_map(self.static)
        self.registration = CameraRegistration(stride=max(12 // self.stride, 1))
        self.tracker = Tracker(self.inventory)
        self.control_period = control_period
        self.debug = FrameDebug()
        wanted = {CLASS_INDEX[c] for c in self._by_colour} | {CLASS_INDEX[c] for c in ("white", "grey", "black", "skin")}
        self._interesting = np.zeros(len(CLASS_INDEX) + 1, dtype=bool)  # indexed by label + 1 (UNKNOWN = -1)
        self._interesting[np.array(sorted(wanted)) + 1] = True
        # Without white, grey or black objects, those colours only matter as parts of a coloured
        # object (an opening, a lid, a label) or around a face: elsewhere they are walls or the
        # robot's own arms, which are a quarter of the frame and need not be back-projected.
        self._neutral = np.zeros(len(CLASS_INDEX) + 1, dtype=bool)
        if not any(c in NEUTRAL for c in self._by_colour):
            self._neutral[[CLASS_INDEX[c] + 1 for c in NEUTRAL]] = True
        self.reset()

    @classmethod
    def for_world(cls, world: Any, **kwargs: Any) -> Perception:
        """A perception for a SimWorld, from its static facts only (scenario, body, intrinsics)."""
        return cls(world.scenario, world.controller.proprioception_names(), world.intrinsics("head"),
                   tuple(world.config.image_size), control_period=world.control_period, **kwargs)

    def reset(self) -> None:
        """Forget everything seen (a new episode); the camera mount is re-estimated too."""
        self.tracker.reset()
        self.registration.reset()
        self._people: dict[str, np.ndarray] = {pid: self.static.people_priors[pid].copy() for pid in self.people_ids}
        self._people_seen: dict[str, float] = {}
        self._hands: dict[str, np.ndarray] = {}
        self._frames = 0
        self.belief: Belief | None = None  # the latest, for readers that do not call update()

    # ---------------------------------------------------------------------------------------
    def update(self, obs: dict[str, Any], time: float | None = None) -> Belief:
        """Fold one observation into the belief and return it."""
        t0 = _time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str) -> None:
            timings[name] = (_time.perf_counter() - t0) * 1000.0

        now = self._frames * self.control_period if time is None else float(time)
        self._frames += 1
        state = np.asarray(obs["observation.state"])
        frames = self.kinematics.frames(state)
        self.tracker.predict(frames, now, self.static, self._hands_or_priors())
        st = self.stride
        rgb = obs["observation.images.head"][::st, ::st]
        depth_full = obs["observation.depth.head"]
        depth = depth_full[::st, ::st]
        self.registration.update(self.rays.rays, depth, frames.head_camera, self.static)
        cam = self.registration.corrected(frames.head_camera)
        lap("registration")
        # World points only where they matter (objects' colours, parts, skin); one compiled pass.
        labels, points, fg = kernels.foreground(rgb, depth, self.rays.rays, self.colours.table, self._interesting,
                                                self._neutral, NEIGHBOURHOOD, cam, self._static_arrays, frames.geoms)
        lap("foreground")
        people, person_mask = detect_people(points, labels, fg, self.static, self._people, stride=st)
        for pid, p in people.items():
            self._people[pid] = p.position
            self._people_seen[pid] = now
            if p.hand is not None:
                self._hands[pid] = self._palm(pid, p.hand)
        lap("people")
        candidates = fg & ~person_mask & (labels >= 0) & (labels != CLASS_INDEX["skin"])
        detections = detect_objects(points, labels, candidates, self.static, self._by_colour, cam.pos, stride=st)
        lap("objects")
        matches = self.tracker.associate(detections, cam.pos, frames, view=(self.K, cam))
        self.tracker.update(matches, cam.pos, frames, self.K, cam, depth_full, now, self.static)
        lap("tracking")
        belief = self._belief(frames, now)
        lap("belief")
        self.debug = FrameDebug(cam, detections, matches, people, timings)
        self.belief = belief
        return belief

    def _palm(self, pid: str, measured: np.ndarray) -> np.ndarray:
        """The palm to believe after seeing one at `measured`.

        The skin-pixel measurement is biased by several centimetres (the visible surface of
        the head and forearm, not their centres; a head cut off by the frame's top edge), too
        coarse to tell whether a released cup rests on the palm. So when a palm is seen near
        where the map says this person holds it out, the map's position is kept; a palm seen
        elsewhere (the person moved) replaces it.
        """
        prior = self.static.hand_priors.get(pid)
        if prior is not None and float(np.linalg.norm(measured - prior)) < PALM_PRIOR_GATE:
            return np.asarray(prior, dtype=float)
        return measured

    def _hands_or_priors(self) -> dict[str, np.ndarray]:
        """Each person's palm: where it was last seen, else where the scenario said they hold it out."""
        return {pid: self._hands.get(pid, self.static.hand_priors[pid]) for pid in self.people_ids}

    def _belief(self, frames: RobotFrames, now: float) -> Belief:
        """The belief of this frame. Built with `model_construct`: every field is made here
        from typed numbers, so pydantic's validation (a third of a millisecond a frame) would
        only check what this code already guarantees."""
        tracks = self.tracker.tracks
        sites = {side: pose.pos for side, pose in frames.grasp_sites.items()}
        at_hand = {oid: hand_at(t, sites) for oid, t in tracks.items()}
        objects = {
            oid: ObjectBelief.model_construct(
                id=oid, category=t.category, colour=t.colour, position=(float(t.position[0]), float(t.position[1]), float(t.position[2])),
                confidence=float(min(max(t.confidence, 0.0), 1.0)), last_seen=float(t.last_seen), visible=bool(t.visible),
                at_hand=at_hand[oid])
            for oid, t in tracks.items() if t.known
        }
        people = {}
        for pid, xy in self._people.items():
            seen = pid in self._people_seen
            hand = self._hands.get(pid)
            people[pid] = PersonBelief.model_construct(id=pid, position=(float(xy[0]), float(xy[1])),
                                                       hand=None if hand is None else (float(hand[0]), float(hand[1]), float(hand[2])),
                                                       confidence=0.95 if seen else 0.3)
        predicates: dict[str, float] = {}
        hands = self._hands_or_priors()
        for oid, t in tracks.items():
            predicates.update(object_predicates(t, self.static, hands, at_hand[oid]))
        robot_xy = np.array(frames.base[:2])
        predicates.update(robot_near_all(robot_xy, self.static, tracks, hands, self._people))
        robot = RobotBelief.model_construct(pose=tuple(float(v) for v in frames.base),
                                            gripper_closed={s: bool(o < OPEN) for s, o in frames.gripper_opening.items()})
        return Belief.model_construct(time=float(now), robot=robot, objects=objects, people=people,
                                      predicates={k: float(v) for k, v in predicates.items()})
