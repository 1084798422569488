"""Objects and people in one head RGB-D frame: colour segments → 3D clusters → measured shapes.

Pixels left after removing the static map and the robot's own body are labelled with a
named colour; each colour's connected segments are back-projected, split when they span
more than one object, and measured: the top surface's height above the supporting
surface, part cues (a cup's dark opening, a can's lid or a bottle's cap in white/grey, a
box's white label band) and the centre of the top face. Category is the inventory
category of that colour whose expected top height and cues fit best.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from perception import kernels
from perception.colours import CLASS_INDEX, CLASSES, NEUTRAL
from perception.geometry import bounds
from perception.static_map import StaticMap, Surface
from scenarios.catalog import CATEGORIES

MIN_PIXELS = 14
"""Smallest colour segment (pixels, parts included) reported as an object."""
TOP_ABOVE_CENTRE = {"cup": 0.051, "can": 0.062, "bottle": 0.118, "box": 0.05, "ball": 0.035}
"""Height of each category's highest visible point above its centre (part geometry included)."""
LOWEST_CENTRE = {name: min(c.half_extents()) for name, c in CATEGORIES.items()}
"""Lowest an object's centre can be above the floor: lying on its narrowest side."""
RESTING_GAP = 0.03
MERGE_GAP = 12
"""Full-resolution pixels between two segments of one colour that may still be one object."""
PART_RADIUS = 0.035


@dataclass
class Detection:
    """One object seen in the head frame (world frame)."""

    colour: str
    position: np.ndarray  # (3,) centre estimate for the chosen category
    top: float  # z of the top surface
    bottom: float
    support: Surface
    resting: bool
    category_costs: dict[str, float]
    pixels: np.ndarray  # (n, 2) row, col of its pixels (colour + parts)
    top_xy: np.ndarray
    points: np.ndarray  # (n, 3) world points
    category: str = ""
    cache: dict[str, np.ndarray] = field(default_factory=dict)
    stride: int = 1  # pixels are on a grid of every `stride`-th full-resolution pixel

    @property
    def n_pixels(self) -> int:
        return len(self.pixels)

    def bbox(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) in full-resolution pixels."""
        r, c = self.pixels[:, 0] * self.stride, self.pixels[:, 1] * self.stride
        return int(c.min()), int(r.min()), int(c.max() + self.stride - 1), int(r.max() + self.stride - 1)


@dataclass
class PersonDetection:
    position: np.ndarray  # (2,) xy
    hand: np.ndarray | None  # (3,) palm centre
    height: float
    n_points: int


def detect_people(points: np.ndarray, labels: np.ndarray, fg: np.ndarray, static: StaticMap,
                  previous: dict[str, np.ndarray], stride: int = 1) -> tuple[dict[str, PersonDetection], np.ndarray]:
    """People near their last known places, and the mask of their pixels (not objects).

    People are tall: foreground points above 1.35 m within 0.5 m of where a person was last
    believed to be (the map's standing place at first) are their head and shoulders.
    """
    found: dict[str, PersonDetection] = {}
    mask = np.zeros(fg.shape, dtype=bool)
    idx = np.flatnonzero(fg.reshape(-1))
    if idx.size == 0:
        return found, mask
    pts = points.reshape(-1, 3)[idx]
    lab = labels.reshape(-1)[idx]
    skin = lab == CLASS_INDEX["skin"]
    for pid, guess in previous.items():
        d = np.hypot(pts[:, 0] - guess[0], pts[:, 1] - guess[1])
        tall = (d < 0.5) & (pts[:, 2] > 1.35)
        if tall.sum() < max(40 // stride**2, 6):
            continue
        head = pts[tall]
        xy = np.median(head[:, :2], axis=0)
        zmax = float(np.percentile(head[:, 2], 99))
        height = (zmax - 0.098) / 0.95
        d = np.hypot(pts[:, 0] - xy[0], pts[:, 1] - xy[1])
        body = d < 0.34
        palm_z = 0.59 * height
        hand_pts = skin & (d > 0.3) & (d < 0.62) & (np.abs(pts[:, 2] - palm_z) < 0.06)
        hand = None
        if hand_pts.sum() >= max(8 // stride**2, 2):
            direction = np.mean(pts[hand_pts, :2], axis=0) - xy
            direction /= np.linalg.norm(direction) + 1e-9
            hand = np.array([*(xy + 0.465 * direction), palm_z])
        arm = skin & (d < 0.65)
        mask.reshape(-1)[idx[body | arm]] = True
        found[pid] = PersonDetection(xy, hand, height, int(tall.sum()))
    return found, mask


def detect_objects(points: np.ndarray, labels: np.ndarray, candidates: np.ndarray, static: StaticMap,
                   inventory: dict[str, list[str]], camera_pos: np.ndarray, stride: int = 1) -> list[Detection]:
    """Objects of the inventory's colours among candidate pixels.

    `inventory` maps colour → categories present in the scene (with repeats for several
    objects of the same colour and category).
    """
    detections: list[Detection] = []
    min_pixels = max(MIN_PIXELS // stride**2, 4)
    min_segment = max(4 // stride**2, 1)
    neutral_ids = [CLASS_INDEX[c] for c in NEUTRAL]
    parts = candidates & _NEUTRAL_LUT[labels + 1]
    used = np.zeros(candidates.shape, dtype=bool)
    chromatic = [c for c in inventory if c not in NEUTRAL]
    neutral = [c for c in inventory if c in NEUTRAL]
    for colour in chromatic + neutral:
        count, groups = kernels.segments(candidates, labels, used, CLASS_INDEX[colour], min_segment)
        if count < min_pixels // 2:
            continue
        groups = _merge_and_split(groups, points, len(inventory[colour]), stride)
        for pix in groups:
            det = _measure(pix, points, labels, parts & ~used, static, colour, inventory[colour], camera_pos, neutral_ids, stride)
            if det is None or det.n_pixels < min_pixels:
                continue
            if colour in NEUTRAL and (min(det.category_costs.values()) > 9.0 or any(
                    np.linalg.norm(det.top_xy - other.top_xy) < 0.06 for other in detections)):
                continue  # a white/grey/black part of another object (cap, label, lid), or not object-shaped
            used[det.pixels[:, 0], det.pixels[:, 1]] = True
            detections.append(det)
    return detections


def _merge_and_split(groups: list[np.ndarray], points: np.ndarray, expected: int, stride: int = 1) -> list[np.ndarray]:
    """Join segments of one object broken by shading or occlusion; split segments that span several objects.

    Two segments join when their image boxes are within a few pixels (a gripper's finger
    across a held object leaves such a gap) and together they are no wider in the world
    than one object — narrower than any two whole objects side by side; a segment wider
    than an object is split by k-means.
    """
    boxes = [(a[0], a[1], b[0], b[1]) for a, b in (bounds(g) for g in groups)]
    xyz = [points[g[:, 0], g[:, 1]] for g in groups]
    lo, hi = zip(*(bounds(p) for p in xyz)) if xyz else ((), ())
    parent = list(range(len(groups)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            a, b = boxes[i], boxes[j]
            gap = max(a[0] - b[2], b[0] - a[2], a[1] - b[3], b[1] - a[3])
            if gap > max(MERGE_GAP // stride, 1) or root(i) == root(j):
                continue
            extent = np.maximum(hi[i], hi[j]) - np.minimum(lo[i], lo[j])  # of both segments' points together
            if max(extent[0], extent[1]) < 0.11 and extent[2] < 0.3:
                parent[root(j)] = root(i)
    merged: dict[int, list[int]] = {}
    for i in range(len(groups)):
        merged.setdefault(root(i), []).append(i)
    out: list[np.ndarray] = []
    for m in merged.values():
        pix = np.concatenate([groups[i] for i in m])
        # the merged points' extent from the segments' bounds: the same numbers as np.ptp, no pass over the points
        span = max(max(hi[i][a] for i in m) - min(lo[i][a] for i in m) for a in (0, 1))
        k = min(max(expected, 1), int(np.ceil(span / 0.1)))
        if span > 0.14 and k >= 2 and len(pix) >= 2 * max(MIN_PIXELS // stride**2, 4):
            out.extend(_kmeans_split(pix, np.concatenate([xyz[i] for i in m])[:, :2], k))
        else:
            out.append(pix)
    return [p for p in out if len(p) >= max(4 // stride**2, 1)]


def _kmeans_split(pix: np.ndarray, xy: np.ndarray, k: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    centres = xy[rng.choice(len(xy), k, replace=False)]
    for _ in range(10):
        assign = np.argmin(((xy[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        centres = np.stack([xy[assign == j].mean(0) if np.any(assign == j) else centres[j] for j in range(k)])
    return [pix[assign == j] for j in range(k)]


_LIGHT = np.zeros(len(CLASSES) + 1, dtype=bool)  # indexed by label + 1 (UNKNOWN = -1)
_LIGHT[[CLASS_INDEX["white"] + 1, CLASS_INDEX["grey"] + 1]] = True
_NEUTRAL_LUT = np.zeros(len(CLASSES) + 1, dtype=bool)
_NEUTRAL_LUT[[CLASS_INDEX[c] + 1 for c in NEUTRAL]] = True


def _measure(pix: np.ndarray, points: np.ndarray, labels: np.ndarray, parts: np.ndarray, static: StaticMap,
             colour: str, categories: list[str], camera_pos: np.ndarray, neutral_ids: list[int], stride: int = 1) -> Detection | None:
    xyz = points[pix[:, 0], pix[:, 1]]
    # Attach part pixels (openings, lids, caps, labels) near the segment in the image and in 3D.
    pad = -(-4 // stride)
    r0, c0 = pix.min(0) - pad
    r1, c1 = pix.max(0) + pad + 1
    r0, c0 = max(r0, 0), max(c0, 0)
    sub = parts[r0:r1, c0:c1]
    centre = _median(xyz)
    if sub.any():
        rr, cc = np.nonzero(sub)
        rr += r0
        cc += c0
        pxyz = points[rr, cc]
        dx, dy = pxyz[:, 0] - centre[0], pxyz[:, 1] - centre[1]
        close = (dx * dx + dy * dy < 0.0036) & (np.abs(pxyz[:, 2] - centre[2]) < 0.15)
        if close.any():
            pix = np.concatenate([pix, np.stack([rr[close], cc[close]], 1)])
            xyz = np.concatenate([xyz, pxyz[close]])
    z = xyz[:, 2]
    zs = np.sort(z)
    n = len(zs)
    top = float(zs[int(round(0.98 * (n - 1)))])
    bottom = float(zs[int(round(0.02 * (n - 1)))])
    centre_xy = centre[:2]
    support = static.support_below(centre_xy, bottom)
    resting = bottom - support.z < RESTING_GAP
    band = z > top - 0.006
    top_xy = xyz[band, :2].mean(axis=0) if np.count_nonzero(band) >= 3 else centre_xy.copy()
    lab = labels[pix[:, 0], pix[:, 1]]
    top_lab = lab[z > top - 0.012]
    if len(top_lab):
        dark_top = float(np.count_nonzero(top_lab == CLASS_INDEX["black"])) / len(top_lab)
        light_top = float(np.count_nonzero(_LIGHT[top_lab + 1])) / len(top_lab)
    else:
        dark_top = light_top = 0.0
    height = top - support.z
    # In a bin objects lie any way up (and the walls hide their lower part): height says nothing there.
    in_bin = static.container_at(np.array([centre_xy[0], centre_xy[1], bottom])) is not None
    lying = _lying_cylinder(xyz)
    costs: dict[str, float] = {}
    for cat in set(categories):
        cylinder = cat in ("can", "bottle")
        expected = TOP_ABOVE_CENTRE[cat] + CATEGORIES[cat].height() / 2
        # a lying can or bottle is as high as it is wide: its height says nothing either
        cost = ((height - expected) / 0.012) ** 2 if resting and not in_bin and not (lying and cylinder) else 0.0
        if colour not in NEUTRAL:
            if cat == "cup":
                cost += 0.0 if dark_top > 0.12 else 6.0
            elif cat in ("box", "ball"):
                cost += 6.0 if dark_top > 0.12 else 0.0
            if cylinder and not (light_top > 0.1 or lying):
                # no lid on top; in a bin a can or bottle either stands, lid up, or lies long: neither is this
                cost += 9.0 if in_bin else 3.0
        if lying and not cylinder:
            cost += 6.0  # nothing else is that long and narrow: a ball is round, a box at most 10 cm, a cup 10 by 7
        costs[cat] = float(cost)
    det = Detection(colour, np.zeros(3), top, bottom, support, bool(resting), costs, pix, top_xy, xyz, stride=stride)
    det.category = min(costs, key=costs.get)  # type: ignore[arg-type]
    det.position = position_for(det, det.category, camera_pos)
    return det


LYING_MIN_LENGTH = 0.125  # 4 sigma of the footprint's long axis: a lying can (12 cm) gives 0.14, a box's 10 cm side 0.115
LYING_MIN_ELONGATION = 1.8  # long / short axis: a lying can about 2.1, a box at most 1.7, a ball 1


def _lying_cylinder(xyz: np.ndarray) -> bool:
    """A can or bottle lying on its side (dropped into a bin, or toppled on a table): it shows
    its side with no light lid on top and stands as high as it is wide, like a ball. Its
    footprint (what shows, above a bin's walls too) is long and narrow; a ball's is round, a
    box's at most 10 by 6 cm and a lying cup's 10 by 7."""
    if len(xyz) < 12:
        return False
    xy = xyz[:, :2] - xyz[:, :2].mean(axis=0)
    minor, major = np.sqrt(np.maximum(np.linalg.eigvalsh(xy.T @ xy / len(xy)), 0.0)) * 4.0
    return bool(major >= LYING_MIN_LENGTH and major >= LYING_MIN_ELONGATION * max(minor, 1e-6))


def _median(xyz: np.ndarray) -> np.ndarray:
    """np.median(xyz, axis=0) by partitioning contiguous columns: the same numbers, several
    times cheaper (see `geometry.bounds` for why the columns)."""
    cols = np.ascontiguousarray(xyz.T)
    n = cols.shape[1]
    k = n // 2
    if n % 2:
        return np.partition(cols, k, axis=1)[:, k]
    part = np.partition(cols, (k - 1, k), axis=1)
    return (part[:, k - 1] + part[:, k]) / 2


def position_for(det: Detection, category: str, camera_pos: np.ndarray) -> np.ndarray:
    """Centre of the object, given its category's shape (computed once per category)."""
    cached = det.cache.get(category)
    if cached is None:
        cached = det.cache[category] = _position(det, category, camera_pos)
    return cached.copy()


def rough_position(det: Detection, category: str) -> np.ndarray:
    """Centre of the object from its top face and support alone: within a centimetre or two of
    `position_for`, without fitting a sphere to a ball (a quarter millisecond each), which is
    all that matching detections to tracks needs."""
    half = CATEGORIES[category].height() / 2
    z = det.support.z + half + 0.001 if det.resting else det.top - TOP_ABOVE_CENTRE[category]
    # A top this low is a lying object's (a bottle in a bin shows its side, not its cap): not below the floor.
    return np.array([det.top_xy[0], det.top_xy[1], max(z, LOWEST_CENTRE[category])])


def _position(det: Detection, category: str, camera_pos: np.ndarray) -> np.ndarray:
    if category == "ball":
        return _sphere_centre(det.points[det.points[:, 2] > det.bottom - 1.0], CATEGORIES["ball"].size[0], camera_pos)
    return rough_position(det, category)


def _sphere_centre(pts: np.ndarray, radius: float, camera_pos: np.ndarray) -> np.ndarray:
    """Least-squares centre of a sphere of known radius seen from one side (Gauss-Newton)."""
    if len(pts) > 96:
        pts = pts[:: int(np.ceil(len(pts) / 96))]
    pts = pts.astype(np.float64)
    mean = pts.mean(axis=0)
    ray = mean - camera_pos
    c = mean + radius * 0.6 * ray / (np.linalg.norm(ray) + 1e-9)
    eye = 1e-6 * np.eye(3)
    for _ in range(4):
        diff = c - pts
        dist = np.sqrt((diff * diff).sum(axis=1)) + 1e-9
        jac = diff / dist[:, None]
        step = np.linalg.solve(jac.T @ jac + eye, -(jac.T @ (dist - radius)))
        c = c + step
        if step @ step < 1e-8:
            break
    return c


__all__ = ["Detection", "PersonDetection", "detect_objects", "detect_people", "position_for", "rough_position", "CLASSES"]
