"""Object tracks over time: matching detections to the inventory, decay, and objects in hand.

Every inventory object has a track. A detection updates the track it matches (same colour,
fitting category, close to where the track was); a track that is not detected keeps its
last estimate, and its confidence decays slowly while the place is out of view or hidden
behind something nearer, but fast when the camera looks straight at where it should be and
sees something else there (it was moved) — as fast as the object would be plain to see
there: a far object a few pixels across that goes undetected is weak evidence it has gone.
An object in a bin is seen only through the bin's opening: while the walls hide any of it,
not seeing it is no evidence (what shows above a wall may be a can's lid or a cup's rim,
not the colour the detector looks for), so it stays in the bin until seen elsewhere.
A track near a gripper that closes on something is attached to that hand and follows the
grasp site until the gripper opens or closes empty (a slip); then it falls from the hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from perception.detection import Detection, position_for, rough_position
from perception.geometry import bounds, project
from perception.static_map import StaticMap
from scenarios.catalog import CATEGORIES
from scenarios.kinematics import Pose, RobotFrames

OUT_OF_VIEW_TAU = 600.0  # s: time constant of the confidence decay while the place is not in view
MISSING_FACTOR = 0.5  # per frame when the place is in plain view but the object is not seen
FAINT_MISSING_FACTOR = 0.92  # per frame when it would cover few pixels there (far away)
PLAIN_VIEW_PIXELS = 150.0  # full-resolution pixels an object covers where a miss is strong evidence
GRASP_DISTANCE = 0.07  # m: a track this close to a closing gripper's site is in that hand
OPEN = 0.096  # m: gripper opening above this is open
EMPTY = 0.012  # m: gripper opening below this is closed on nothing
MATCH_GATE = 40.0
FRAGMENT_EXTENT = 0.11  # m: two detections of a colour whose points together are no wider are one object's pieces
CATEGORY_GATE = 12.0  # detections whose shape fits a category worse than this are not matched to it
JUMP_GATE = 0.15  # m
FAR_JUMP = 0.5  # m: see Tracker.associate (session 18: a learned pick turned the head to a shaded orange ball on a
# counter 1.8 m from the red cup, read it red, and the cup's track jumped there; the cup stood on the table, out of view)
RELEASED_CONFIDENCE = 0.8  # where a released object landed is predicted, not seen: believed moderately
HAND_RADIUS = 0.1  # m: an object this close (xy) to a person's palm, at palm height, rests on it
FINGER_REACH = 0.04  # m: a grasp site this far outside an object's extent may still have a finger pad on it
SUPPORT_GAP = 0.025  # m: an object whose bottom is within this of the surface under it rests on it
PARTIAL_VIEW = 0.6  # a detection under this share of the pixels the whole object would cover is a partial view
EXTENT_POINTS = 8  # points round each of the top and bottom circles of an object's extent, for what walls hide


def rests_on_palm(category: str, position: np.ndarray, hand: np.ndarray, slack_above: float = 0.06) -> bool:
    """Whether an object centred at `position` rests on a palm at `hand`, standing or lying:
    its centre is over the palm by at least its smallest and at most its largest half-extent
    (a bottle handed over often topples onto its side)."""
    halves = CATEGORIES[category].half_extents()
    rise = position[2] - hand[2]
    return bool(np.hypot(position[0] - hand[0], position[1] - hand[1]) < HAND_RADIUS
                and min(halves) - 0.03 < rise < max(halves) + slack_above)


def fingers_at(category: str, position: np.ndarray, sites: dict[str, np.ndarray]) -> str | None:
    """The hand whose fingers may still be on an object centred at `position`, else None.

    Kinematics tells where each grasp site is, not what the pads touch: a hand counts as at
    the object while its site is within the object's extent (standing) grown by
    `FINGER_REACH`. So a hand that has let go counts until it has withdrawn, which is what
    ground truth's `given` asks (no finger on the object) and what a camera cannot tell apart
    from fingers still squeezing it.
    """
    cat = CATEGORIES[category]
    radius, half = cat.footprint_radius(), cat.height() / 2
    for side, site in sites.items():
        if (np.hypot(site[0] - position[0], site[1] - position[1]) < radius + FINGER_REACH
                and abs(site[2] - position[2]) < half + FINGER_REACH):
            return side
    return None


def hand_at(t: ObjectTrack, sites: dict[str, np.ndarray]) -> str | None:
    """The hand holding a track, or whose fingers are still at it after letting go, seen or
    not: a hand over an object hides it from the head camera, so unseen is no evidence the
    fingers have left. (A slipped object's track does not stay in the hand: `predict` lets it
    fall, as a released one does.)"""
    if t.held_side is not None:
        return t.held_side
    return fingers_at(t.category, t.position, sites) if t.known else None


def grip_range(category: str) -> tuple[float, float]:
    """Gripper openings (m) that mean a `category` object is squeezed between both pads.

    The pads close on the object's width (a box across either pair of faces) and
    sink a little into it; much narrower means the fingers met past it, much wider that they
    stopped on something else.
    """
    cat = CATEGORIES[category]
    if cat.shape == "box":
        widths = (2 * min(cat.size[:2]), 2 * max(cat.size[:2]))
    else:
        widths = (2 * cat.size[0], 2 * cat.size[0])
    return widths[0] - 0.025, widths[1] + 0.006


@dataclass
class ObjectTrack:
    id: str
    category: str
    colour: str
    position: np.ndarray | None = None
    confidence: float = 0.0
    last_seen: float = -1.0
    visible: bool = False
    held_side: str | None = None
    grip_offset: np.ndarray | None = None
    resting_on: str | None = None  # surface id of the last sighting, if it rested on one
    landed_in: str | None = None  # container or person id it was released over (until seen again)
    lifted: bool = False  # held, and risen off what it stood on since the grasp (a finished pick)
    misses: int = 0
    history: list[np.ndarray] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.position is not None


def gap_to_support(category: str, position: np.ndarray, static) -> tuple[float, object]:
    """How far an upright object centred at `position` has its bottom above the surface under it,
    and that surface (`StaticMap.support_below`)."""
    bottom = float(position[2]) - CATEGORIES[category].height() / 2
    surface = static.support_below(np.asarray(position[:2]), bottom)
    return bottom - surface.z, surface


def clear_of_support(category: str, position: np.ndarray, static) -> bool:
    """Whether an object centred at `position` is off the surface under it (its bottom at least
    SUPPORT_GAP above it): ground truth's `holding` needs the object gripped *and* resting on nothing."""
    return gap_to_support(category, position, static)[0] >= SUPPORT_GAP


def extent_points(category: str, position: np.ndarray) -> np.ndarray:
    """Points (2 * EXTENT_POINTS, 3) round the top and bottom circles of an upright cylinder
    that bounds an object centred at `position` standing or lying on its side (as high as the
    object stands, as wide as it reaches either way): when walls hide none of these, they
    hide none of the object."""
    cat = CATEGORIES[category]
    radius = max(cat.footprint_radius(), cat.height() / 2)
    angles = np.linspace(0.0, 2.0 * math.pi, EXTENT_POINTS, endpoint=False)
    ring = radius * np.column_stack([np.cos(angles), np.sin(angles), np.zeros(EXTENT_POINTS)])
    half = np.array([0.0, 0.0, cat.height() / 2])
    return np.concatenate([position + ring - half, position + ring + half])


def _project(K: np.ndarray, cam: Pose, position: np.ndarray) -> tuple[float, float, float]:
    """Pixel (u, v) and depth of one world point."""
    uv, zs = project(K, cam, position[None])
    return float(uv[0, 0]), float(uv[0, 1]), float(zs[0])


def _in_view(view: tuple[np.ndarray, Pose], position: np.ndarray) -> bool:
    """Whether a world point projects into the image of camera `view` = (K, pose), in front of it."""
    K, cam = view
    u, v, z = _project(K, cam, np.asarray(position, float))
    return z > 0 and 0 <= u < 2 * K[0, 2] and 0 <= v < 2 * K[1, 2]


def _pixels_covered(category: str, z: float, K: np.ndarray) -> float:
    """Pixels an object of `category` covers, side on, at depth z (its whole silhouette)."""
    cat = CATEGORIES[category]
    width = 2 * (sum(cat.size[:2]) / 2 if cat.shape == "box" else cat.size[0])
    area = width * cat.height() * (math.pi / 4 if cat.shape == "sphere" else 1.0)
    return float(K[0, 0] * K[1, 1] * area / (z * z))


def _one_object(a: Detection, b: Detection) -> bool:
    (alo, ahi), (blo, bhi) = bounds(a.points), bounds(b.points)
    lo, hi = np.minimum(alo, blo), np.maximum(ahi, bhi)
    return bool(max(hi[0] - lo[0], hi[1] - lo[1]) < FRAGMENT_EXTENT and hi[2] - lo[2] < 0.3)


class Tracker:
    """Tracks for a fixed inventory of objects (id → (category, colour))."""

    def __init__(self, inventory: dict[str, tuple[str, str]]) -> None:
        self.inventory = inventory
        self.tracks = {oid: ObjectTrack(oid, cat, col) for oid, (cat, col) in inventory.items()}
        self.time = 0.0

    def reset(self) -> None:
        self.tracks = {oid: ObjectTrack(oid, cat, col) for oid, (cat, col) in self.inventory.items()}
        self.time = 0.0

    def predict(self, frames: RobotFrames, time: float, static=None, hands: dict[str, np.ndarray] | None = None) -> None:
        """Move held tracks with their hand; release them when the gripper opens, or closes past the object (a slip).

        A released object falls from where the hand held it: into a bin whose opening is
        below it, onto a person's palm under it, or onto the highest surface below it. That
        landing place is a prediction, believed moderately until the object is seen again.
        """
        dt = max(time - self.time, 0.0)
        self.time = time
        for t in self.tracks.values():
            if t.held_side is not None:
                opening = frames.gripper_opening[t.held_side]
                lo, hi = grip_range(t.category)
                if opening > hi:  # opened wider than the object: let go, it drops from the hand
                    t.position = frames.grasp_sites[t.held_side].apply(t.grip_offset[None])[0]
                    t.held_side, t.grip_offset = None, None
                    self._land(t, static, hands or {})
                elif opening < lo or opening > hi:  # the fingers closed past it or on something else: it slipped
                    t.held_side, t.grip_offset = None, None
                    self._land(t, static, hands or {})  # it falls from the hand, somewhere: a weak guess
                    t.confidence *= 0.5
                else:
                    t.position = frames.grasp_sites[t.held_side].apply(t.grip_offset[None])[0]
                    t.lifted = t.lifted or (static is not None and clear_of_support(t.category, t.position, static))
            elif t.known and dt > 0:
                t.confidence *= math.exp(-dt / OUT_OF_VIEW_TAU)

    @staticmethod
    def _land(t: ObjectTrack, static, hands: dict[str, np.ndarray]) -> None:
        t.lifted = False
        t.confidence = min(t.confidence, RELEASED_CONFIDENCE)
        t.resting_on, t.landed_in = None, None
        if static is None:
            return
        pos = t.position
        half = CATEGORIES[t.category].height() / 2
        bottom = pos[2] - half
        for pid, hand in hands.items():
            if rests_on_palm(t.category, pos, hand, slack_above=0.15):
                t.position = np.array([pos[0], pos[1], hand[2] + half + 0.01])
                t.landed_in = pid
                return
        cid = static.container_at(np.array([pos[0], pos[1], 0.05]))
        if cid is not None and bottom > 0.0:
            centre, yaw, hxy, height = static.containers[cid]
            if bottom > height - 0.05:  # above the opening: it falls in
                t.position = np.array([pos[0], pos[1], 0.012 + half + 0.001])
                t.landed_in = cid
                return
        s = static.support_below(pos[:2], bottom)
        t.position = np.array([pos[0], pos[1], s.z + half + 0.001])
        t.resting_on = s.owner

    def associate(self, detections: list[Detection], camera_pos: np.ndarray, frames: RobotFrames | None,
                  view: tuple[np.ndarray, Pose] | None = None) -> dict[str, Detection]:
        """Hungarian matching of detections to tracks on colour, category fit and distance.

        With `view` (the head camera's intrinsics and pose), a confidently believed object at
        rest is not matched to a detection more than `FAR_JUMP` away while its believed place is
        out of view: nothing has shown it gone from there, so the far one is another object of
        its colour. (In view, the far match is allowed: the place is there to be seen empty.)"""
        ids = list(self.tracks)
        if not detections:
            return {}
        cost = np.full((len(detections), len(ids)), 1e6)
        sites = {side: pose.pos for side, pose in frames.grasp_sites.items()} if frames is not None else {}
        for i, d in enumerate(detections):
            for j, oid in enumerate(ids):
                t = self.tracks[oid]
                if t.colour != d.colour or t.category not in d.category_costs:
                    continue
                c = d.category_costs[t.category]
                if c > CATEGORY_GATE:
                    continue  # not that shape
                if t.held_side is not None and math.dist(rough_position(d, t.category), t.position) > 2 * GRASP_DISTANCE:
                    continue  # a held object is in the hand: something of its colour elsewhere is another one
                if t.known and t.confidence > 0.2 and t.held_side is None:
                    dist = math.dist(rough_position(d, t.category), t.position)
                    if (dist > FAR_JUMP and view is not None and not _in_view(view, t.position)
                            and fingers_at(t.category, rough_position(d, t.category), sites) is None):
                        continue  # its place unseen, it is still there: another object of its colour
                    if dist > JUMP_GATE and d.category_costs[t.category] > min(d.category_costs.values()):
                        continue  # far from where it was, and another category fits the detection better
                    c += min((dist / 0.15) ** 2, 20.0) * t.confidence
                cost[i, j] = c
        rows, cols = linear_sum_assignment(cost)
        out: dict[str, Detection] = {}
        for i, j in zip(rows, cols):
            if cost[i, j] < MATCH_GATE:
                out[ids[j]] = detections[i]
        return self._without_fragments(out)

    def _without_fragments(self, matches: dict[str, Detection]) -> dict[str, Detection]:
        """Drop a match that moves a track far when its detection and another of the same
        colour, matched to a track already there, are together no wider than one object: it
        is a piece of that object (a finger across a held can splits it in two), not the far
        object come over. Two whole objects side by side are always wider."""
        far, stays = [], []
        for oid, d in matches.items():
            t = self.tracks[oid]
            moved = t.known and float(np.linalg.norm(d.top_xy - t.position[:2])) > JUMP_GATE
            (far if moved and t.held_side is None else stays).append((oid, d))
        out = dict(matches)
        for oid, d in far:
            if any(o.colour == d.colour and _one_object(o, d) for _, o in stays):
                del out[oid]
        return out

    def update(self, matches: dict[str, Detection], camera_pos: np.ndarray, frames: RobotFrames,
               K: np.ndarray, cam: Pose, depth: np.ndarray, time: float, static: StaticMap | None = None) -> None:
        """Fold this frame's matches into the tracks and judge the unmatched ones (against the
        static map's bins, when given: see `_expected_pixels`)."""
        h, w = depth.shape
        for oid, t in self.tracks.items():
            d = matches.get(oid)
            if d is not None:
                pos = position_for(d, t.category, camera_pos)
                steady = t.held_side is None and t.known and t.confidence > 0.5
                if steady and t.visible and np.linalg.norm(pos - t.position) < 0.01:
                    pos = 0.5 * (pos + t.position)  # steady object: average out pixel noise
                elif steady and np.linalg.norm(pos - t.position) < 0.1 and self._partial(d, t, K, cam, h, w):
                    pos = t.position  # a sliver of it (hidden behind an arm, cut by the frame): confirms, cannot place it
                t.position = pos
                t.confidence = min(0.99, 1.0 - (1.0 - t.confidence) * 0.3) if t.known else 0.9
                t.confidence = max(t.confidence, 0.9)
                t.last_seen, t.visible, t.misses = time, True, 0
                t.resting_on = d.support.owner if d.resting else None
                t.landed_in = None
                if t.held_side is not None:
                    site = frames.grasp_sites[t.held_side]
                    if np.linalg.norm(pos - site.pos) > 2 * GRASP_DISTANCE:
                        t.held_side, t.grip_offset = None, None  # seen away from the hand: not held
                    else:
                        t.grip_offset = site.inverse_apply(pos[None])[0]
                continue
            t.visible = False
            if not t.known:
                continue
            expected = self._expected_pixels(t, K, cam, depth, h, w, static) if t.held_side is None else 0.0
            if expected > 0.0:
                t.misses += 1
                t.confidence *= MISSING_FACTOR if expected >= PLAIN_VIEW_PIXELS else FAINT_MISSING_FACTOR
        self._grasps(frames)

    def _partial(self, d: Detection, t: ObjectTrack, K: np.ndarray, cam: Pose, h: int, w: int) -> bool:
        """Whether a detection shows only part of the track's object: cut by the frame's edge,
        or covering much less than the whole object would from here (the rest hidden)."""
        u, v, z = _project(K, cam, t.position)
        if z <= 0.1:
            return False
        radius = K[0, 0] * CATEGORIES[t.category].height() / 2 / z
        if not (radius <= u < w - radius and radius <= v < h - radius):
            return True
        if not (8 <= u < w - 8 and 8 <= v < h - 8):
            return False
        return d.n_pixels * d.stride**2 < PARTIAL_VIEW * _pixels_covered(t.category, z, K)

    @staticmethod
    def _expected_pixels(t: ObjectTrack, K: np.ndarray, cam: Pose, depth: np.ndarray, h: int, w: int,
                         static: StaticMap | None = None) -> float:
        """Pixels the track's object would cover in this frame; 0 when out of view, hidden
        behind something nearer, or in a bin with any of it behind the bin's walls."""
        u, v, z = _project(K, cam, t.position)
        if z <= 0.1 or not (8 <= u < w - 8 and 8 <= v < h - 8):
            return 0.0
        if float(np.median(depth[int(v) - 2 : int(v) + 3, int(u) - 2 : int(u) + 3])) <= z - 0.06:
            return 0.0  # something nearer hides it
        if static is not None and static.walls_hide(extent_points(t.category, t.position), cam.pos).any():
            return 0.0  # partly behind a bin's wall: what shows above it may be a lid or a rim, not its colour
        return _pixels_covered(t.category, z, K)

    def _grasps(self, frames: RobotFrames) -> None:
        """A gripper closed to an object's width with that object's estimate at its grasp site holds it."""
        for side, opening in frames.gripper_opening.items():
            if not (EMPTY < opening < OPEN) or any(t.held_side == side for t in self.tracks.values()):
                continue
            site = frames.grasp_sites[side]
            best, best_d = None, GRASP_DISTANCE
            for t in self.tracks.values():
                lo, hi = grip_range(t.category)
                if t.known and t.held_side is None and t.confidence > 0.2 and lo <= opening <= hi:
                    dist = float(np.linalg.norm(t.position - site.pos))
                    if dist < best_d:
                        best, best_d = t, dist
            if best is not None:
                best.held_side, best.lifted = side, False
                best.grip_offset = site.inverse_apply(best.position[None])[0]
                best.resting_on, best.landed_in = None, None
