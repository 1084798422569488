"""Scenario → MJCF: the room, furniture, objects, people and lights around the humanoid.

The scene is emitted as plain MJCF text that includes the robot's own file, so anyone can
dump it (`vla-agent scenario xml NAME`) and open it in MuJoCo's viewer. Names follow one
scheme that ground truth and randomisation rely on:

- furniture `F`: body `F`; resting surfaces are geoms `F/top`, `F/board<k>` (shelf levels),
  `F/floor` (a bin's floor);
- object `O`: body `O` with a free joint `O/joint`, collision geom `O`, decoration `O/...`;
- person `P`: body `P`; the open palm geom `P/palm` and site `P/hand`.

World geoms use contype=1 conaffinity=3; the robot uses contype=2 conaffinity=1, so the
robot touches the world but never itself.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from scenarios.catalog import CATEGORIES, COLOURS, FURNITURE
from scenarios.robot import HUMANOID_XML, REQUIRED_OPTIONS
from scenarios.schema import BIN_WALL, FLOOR_ID, Furniture, Person, Scenario, SceneObject, object_world_xy, support_top

TIMESTEP = 0.002
IMAGE_MAX = (960, 1280)  # largest offscreen image (height, width) the scene allows
SKIN = (0.87, 0.7, 0.58)
WALL_THICKNESS = 0.1


@dataclass
class SceneIndex:
    """Where each scenario entity lives in the compiled model, by name."""

    surfaces: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # furniture id -> [(geom, top z)]
    containers: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    people: list[str] = field(default_factory=list)
    object_decorations: dict[str, list[str]] = field(default_factory=dict)  # object id -> decoration geoms


def _fmt(values) -> str:
    return " ".join(f"{v:.6g}" for v in values)


def _rgba(colour: str | tuple[float, float, float], alpha: float = 1.0) -> str:
    rgb = COLOURS[colour].rgb if isinstance(colour, str) else colour
    return _fmt((*rgb, alpha))


def _yaw_quat(yaw: float) -> str:
    return _fmt((math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)))


def _look_at_xyaxes(pos: tuple[float, float, float], target: tuple[float, float, float]) -> str:
    """MJCF xyaxes for a camera at `pos` looking at `target` with world z up."""
    fwd = [t - p for t, p in zip(target, pos)]
    n = math.sqrt(sum(f * f for f in fwd))
    fwd = [f / n for f in fwd]
    x = [fwd[1], -fwd[0], 0.0]  # fwd × z
    nx = math.hypot(x[0], x[1]) or 1.0
    x = [x[0] / nx, x[1] / nx, 0.0]
    y = [x[1] * fwd[2] - x[2] * fwd[1], x[2] * fwd[0] - x[0] * fwd[2], x[0] * fwd[1] - x[1] * fwd[0]]
    return _fmt((*x, *y))


class _Scene:
    def __init__(self, scenario: Scenario) -> None:
        self.sc = scenario
        self.index = SceneIndex()
        self.root = ET.Element("mujoco", model=scenario.name)
        ET.SubElement(self.root, "compiler", autolimits="true")  # angles stay in degrees: humanoid.xml uses them
        options = {"timestep": str(TIMESTEP), "integrator": "implicitfast", **REQUIRED_OPTIONS}
        ET.SubElement(self.root, "option", **options)
        visual = ET.SubElement(self.root, "visual")
        ET.SubElement(visual, "global", offwidth=str(IMAGE_MAX[1]), offheight=str(IMAGE_MAX[0]))
        # Software GL pays for every extra pass: each shadow-casting light costs ~20 ms a frame
        # and floor reflections ~10 ms, against ~6 ms for the plain frame. Lights cast no
        # shadow unless a scenario asks; previews switch shadows on (model.light_castshadow).
        ET.SubElement(visual, "quality", shadowsize="2048", offsamples="0")
        ET.SubElement(visual, "headlight", ambient="0.35 0.35 0.35", diffuse="0.25 0.25 0.25", specular="0 0 0")
        ET.SubElement(visual, "map", znear="0.01", zfar="30")
        self.asset = ET.SubElement(self.root, "asset")
        default = ET.SubElement(self.root, "default")
        world = ET.SubElement(default, "default", {"class": "world"})
        ET.SubElement(world, "geom", contype="1", conaffinity="3", condim="3", friction="0.8 0.005 0.0001")
        deco = ET.SubElement(default, "default", {"class": "decoration"})
        ET.SubElement(deco, "geom", contype="0", conaffinity="0", density="0", group="1")
        ET.SubElement(self.root, "include", file=HUMANOID_XML.name)
        self.body = ET.SubElement(self.root, "worldbody")

    def geom(self, parent: ET.Element, cls: str = "world", **attrs: str) -> ET.Element:
        return ET.SubElement(parent, "geom", {"class": cls, **attrs})

    # -- room ---------------------------------------------------------------------------
    def room(self) -> None:
        sx, sy = self.sc.room.size
        fr, fg, fb = COLOURS[self.sc.room.floor_colour].rgb
        ET.SubElement(self.asset, "texture", name="floor_tex", type="2d", builtin="checker", width="512", height="512",
                      rgb1=_fmt((fr, fg, fb)), rgb2=_fmt((fr * 0.88, fg * 0.88, fb * 0.88)))
        ET.SubElement(self.asset, "material", name="floor_mat", texture="floor_tex", texrepeat=_fmt((sx, sy)))
        ET.SubElement(self.asset, "texture", name="sky", type="skybox", builtin="gradient", rgb1="0.8 0.85 0.9", rgb2="0.3 0.35 0.4", width="64", height="64")
        self.geom(self.body, name="floor", type="plane", size=_fmt((sx / 2, sy / 2, 0.05)), material="floor_mat")
        h = self.sc.room.wall_height
        t = WALL_THICKNESS
        walls = {
            "wall_north": ((0, sy / 2 + t / 2, h / 2), (sx / 2 + t, t / 2, h / 2)),
            "wall_south": ((0, -sy / 2 - t / 2, h / 2), (sx / 2 + t, t / 2, h / 2)),
            "wall_east": ((sx / 2 + t / 2, 0, h / 2), (t / 2, sy / 2, h / 2)),
            "wall_west": ((-sx / 2 - t / 2, 0, h / 2), (t / 2, sy / 2, h / 2)),
        }
        for name, (pos, size) in walls.items():
            self.geom(self.body, name=name, type="box", pos=_fmt(pos), size=_fmt(size), rgba=_rgba(self.sc.room.wall_colour))

    def lights(self) -> None:
        for i, light in enumerate(self.sc.lights):
            attrs = {
                "name": f"light{i}", "pos": _fmt(light.pos), "diffuse": _fmt([light.intensity] * 3),
                "specular": "0.1 0.1 0.1", "castshadow": str(light.cast_shadow).lower(),
            }
            if light.directional:
                attrs["directional"] = "true"
            attrs["dir"] = _fmt((-light.pos[0] * 0.2, -light.pos[1] * 0.2, -1.0))
            ET.SubElement(self.body, "light", attrs)

    def overview_camera(self) -> None:
        cam = self.sc.overview_camera
        if cam is None:
            pos, target = self._auto_overview()
            fovy = 60.0
        else:
            pos, target, fovy = cam.pos, cam.look_at, cam.fovy
        ET.SubElement(self.body, "camera", name="overview", pos=_fmt(pos), xyaxes=_look_at_xyaxes(pos, target), fovy=f"{fovy:.4g}")

    def _auto_overview(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """A high camera facing the robot across the scene, so the robot never hides what it looks at."""
        sx, sy = self.sc.room.size
        start = self.sc.robot.start
        pts = [f.pos for f in self.sc.furniture] + [p.pos for p in self.sc.people] + [(start.x, start.y)] * 2
        target = (sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts), 0.55)
        margin = 0.2
        best: tuple[float, tuple[float, float]] = (-1.0, (0.0, 0.0))
        for offset in (40, -40, 65, -65):
            a = start.yaw + math.radians(offset)
            direction = (math.cos(a), math.sin(a))
            # Walk out from the target until the room's wall, keeping a margin.
            limits = [((sx / 2 - margin) - target[0] * math.copysign(1, d)) / abs(d) if abs(d) > 1e-6 else math.inf
                      for d in (direction[0],)] + [((sy / 2 - margin) - target[1] * math.copysign(1, d)) / abs(d)
                                                     if abs(d) > 1e-6 else math.inf for d in (direction[1],)]
            reach = min(limits)
            if reach > best[0]:
                best = (reach, (target[0] + direction[0] * reach, target[1] + direction[1] * reach))
        z = min(self.sc.room.wall_height - 0.15, 2.5)
        return (best[1][0], best[1][1], z), target

    # -- furniture ----------------------------------------------------------------------
    def furniture(self, f: Furniture) -> None:
        L, D, H = f.dims
        body = ET.SubElement(self.body, "body", name=f.id, pos=_fmt((*f.pos, 0.0)), quat=_yaw_quat(f.yaw))
        rgba = _rgba(f.look)
        dark = _rgba(tuple(c * 0.7 for c in COLOURS[f.look].rgb))
        surfaces: list[tuple[str, float]] = []
        if f.kind == "table":
            slab = 0.04
            self.geom(body, name=f"{f.id}/top", type="box", pos=_fmt((0, 0, H - slab / 2)), size=_fmt((L / 2, D / 2, slab / 2)), rgba=rgba)
            for sx in (-1, 1):
                for sy in (-1, 1):
                    self.geom(body, name=f"{f.id}/leg{len(body) - 1}", type="box",
                              pos=_fmt((sx * (L / 2 - 0.05), sy * (D / 2 - 0.05), (H - slab) / 2)),
                              size=_fmt((0.025, 0.025, (H - slab) / 2)), rgba=dark)
            surfaces.append((f"{f.id}/top", H))
        elif f.kind == "counter":
            slab = 0.03
            self.geom(body, name=f"{f.id}/cabinet", type="box", pos=_fmt((0, 0, (H - slab) / 2)),
                      size=_fmt((L / 2 - 0.02, D / 2 - 0.03, (H - slab) / 2)), rgba=dark)
            self.geom(body, name=f"{f.id}/top", type="box", pos=_fmt((0, 0, H - slab / 2)), size=_fmt((L / 2, D / 2, slab / 2)), rgba=rgba)
            for k, x in enumerate((-L / 4, L / 4)):  # door handles, for looks
                self.geom(body, "decoration", name=f"{f.id}/handle{k}", type="box", pos=_fmt((x, -D / 2 + 0.02, H * 0.75)),
                          size="0.06 0.008 0.008", rgba="0.6 0.6 0.62 1")
            surfaces.append((f"{f.id}/top", H))
        elif f.kind == "shelf":
            t = 0.02
            for sx in (-1, 1):
                self.geom(body, name=f"{f.id}/side{(sx + 1) // 2}", type="box", pos=_fmt((sx * (L / 2 - t / 2), 0, H / 2)),
                          size=_fmt((t / 2, D / 2, H / 2)), rgba=dark)
            self.geom(body, name=f"{f.id}/back", type="box", pos=_fmt((0, D / 2 - t / 2, H / 2)), size=_fmt((L / 2 - t, t / 2, H / 2)), rgba=dark)
            heights = f.surface_heights()
            for k, level in enumerate(heights):
                name = f"{f.id}/top" if k == len(heights) - 1 else f"{f.id}/board{k}"
                self.geom(body, name=name, type="box", pos=_fmt((0, 0, level - t / 2)), size=_fmt((L / 2, D / 2, t / 2)), rgba=rgba)
                surfaces.append((name, level))
        elif f.kind == "bin":
            t = BIN_WALL
            self.geom(body, name=f"{f.id}/floor", type="box", pos=_fmt((0, 0, t / 2)), size=_fmt((L / 2, D / 2, t / 2)), rgba=dark)
            for k, (pos, size) in enumerate((
                ((L / 2 - t / 2, 0, H / 2), (t / 2, D / 2, H / 2)),
                ((-L / 2 + t / 2, 0, H / 2), (t / 2, D / 2, H / 2)),
                ((0, D / 2 - t / 2, H / 2), (L / 2 - t, t / 2, H / 2)),
                ((0, -D / 2 + t / 2, H / 2), (L / 2 - t, t / 2, H / 2)),
            )):
                self.geom(body, name=f"{f.id}/wall{k}", type="box", pos=_fmt(pos), size=_fmt(size), rgba=rgba)
            surfaces.append((f"{f.id}/floor", t))
            self.index.containers.append(f.id)
        elif f.kind == "sofa":
            seat = H * 0.5
            self.geom(body, name=f"{f.id}/seat", type="box", pos=_fmt((0, -0.05, seat / 2)), size=_fmt((L / 2 - 0.12, D / 2 - 0.05, seat / 2)), rgba=rgba)
            self.geom(body, name=f"{f.id}/back", type="box", pos=_fmt((0, D / 2 - 0.1, H / 2)), size=_fmt((L / 2, 0.1, H / 2)), rgba=dark)
            for sx in (-1, 1):
                self.geom(body, name=f"{f.id}/arm{(sx + 1) // 2}", type="box", pos=_fmt((sx * (L / 2 - 0.06), -0.05, seat * 0.65)),
                          size=_fmt((0.06, D / 2 - 0.05, seat * 0.65)), rgba=dark)
        if surfaces:
            self.index.surfaces[f.id] = surfaces

    # -- objects ------------------------------------------------------------------------
    def scene_object(self, o: SceneObject) -> None:
        cat = CATEGORIES[o.category]
        size = o.dims
        x, y = object_world_xy(self.sc.furniture_by_id(), o)
        z = support_top(self.sc.furniture_by_id(), o) + o.height / 2 + 0.002
        body = ET.SubElement(self.body, "body", name=o.id, pos=_fmt((x, y, z)), quat=_yaw_quat(o.yaw))
        ET.SubElement(body, "freejoint", name=f"{o.id}/joint")
        rgba = _rgba(o.colour)
        # Torsional friction (condim 4) lets fingers hold a cylinder against twisting; balls
        # get rolling friction (condim 6) so they stay where a scenario puts them.
        condim = "6" if cat.shape == "sphere" else "4"
        friction = _fmt((cat.friction, 0.01, 0.002 if cat.shape == "sphere" else 0.0001))
        decorations: list[str] = []

        def deco(name: str, **attrs: str) -> None:
            self.geom(body, "decoration", name=f"{o.id}/{name}", **attrs)
            decorations.append(f"{o.id}/{name}")

        if o.category == "bottle":
            r, hh = size
            body_hh = hh * 0.72
            self.geom(body, name=o.id, type="cylinder", size=_fmt((r, body_hh)), pos=_fmt((0, 0, -hh + body_hh)),
                      mass=f"{o.weight:.4g}", rgba=rgba, condim=condim, friction=friction, priority="1")
            neck = hh - body_hh
            self.geom(body, name=f"{o.id}/neck", type="cylinder", size=_fmt((r * 0.45, neck)), pos=_fmt((0, 0, hh - neck)),
                      mass="0.001", rgba=rgba, condim=condim, friction=friction)
            deco("cap", type="cylinder", size=_fmt((r * 0.5, 0.008)), pos=_fmt((0, 0, hh)), rgba="0.95 0.95 0.95 1")
        else:
            geom_size = size if cat.shape != "cylinder" else size
            self.geom(body, name=o.id, type=cat.shape, size=_fmt(geom_size), mass=f"{o.weight:.4g}", rgba=rgba,
                      condim=condim, friction=friction, priority="1")
            if o.category == "cup":
                r, hh = size
                deco("opening", type="cylinder", size=_fmt((r * 0.85, 0.001)), pos=_fmt((0, 0, hh)), rgba="0.15 0.1 0.08 1")
                deco("handle", type="capsule", fromto=_fmt((r * 0.95, 0, hh * 0.5, r * 0.95, 0, -hh * 0.5)), size=_fmt((r * 0.18,)), rgba=rgba)
            elif o.category == "can":
                r, hh = size
                deco("lid", type="cylinder", size=_fmt((r * 0.95, 0.002)), pos=_fmt((0, 0, hh)), rgba="0.75 0.75 0.78 1")
            elif o.category == "box":
                hx, hy, hz = size
                deco("label", type="box", size=_fmt((hx * 1.002, hy * 0.6, hz * 0.25)), rgba="0.95 0.95 0.95 1")
        self.index.objects.append(o.id)
        self.index.object_decorations[o.id] = decorations

    # -- people -------------------------------------------------------------------------
    def person(self, p: Person) -> None:
        h = p.height
        body = ET.SubElement(self.body, "body", name=p.id, pos=_fmt((*p.pos, 0.0)), quat=_yaw_quat(p.yaw))
        shirt = _rgba(p.shirt_colour)
        skin = _rgba(SKIN)
        trousers = "0.2 0.22 0.3 1"
        hip = 0.47 * h
        for k, sy in enumerate((-1, 1)):
            self.geom(body, name=f"{p.id}/leg{k}", type="capsule", fromto=_fmt((0, sy * 0.09, 0.06, 0, sy * 0.09, hip)), size="0.06", rgba=trousers)
            self.geom(body, "decoration", name=f"{p.id}/shoe{k}", type="box", pos=_fmt((0.04, sy * 0.09, 0.03)), size="0.1 0.045 0.03", rgba="0.1 0.1 0.1 1")
        self.geom(body, name=f"{p.id}/torso", type="box", pos=_fmt((0, 0, hip + 0.15 * h)), size=_fmt((0.11, 0.19, 0.15 * h)), rgba=shirt)
        self.geom(body, "decoration", name=f"{p.id}/neck", type="capsule", fromto=_fmt((0, 0, hip + 0.3 * h, 0, 0, 0.88 * h)), size="0.045", rgba=skin)
        self.geom(body, name=f"{p.id}/head", type="sphere", pos=_fmt((0, 0, 0.93 * h)), size="0.1", rgba=skin)
        self.geom(body, "decoration", name=f"{p.id}/hair", type="sphere", pos=_fmt((-0.02, 0, 0.95 * h)), size="0.098", rgba="0.25 0.15 0.08 1")
        shoulder_z = hip + 0.28 * h
        side = -1.0 if p.hand == "right" else 1.0
        hx, hy, hz = p.hand_position()
        c, s = math.cos(-p.yaw), math.sin(-p.yaw)
        lx, ly = c * (hx - p.pos[0]) - s * (hy - p.pos[1]), s * (hx - p.pos[0]) + c * (hy - p.pos[1])
        elbow = (0.05, side * 0.22, hz - 0.02)
        self.geom(body, name=f"{p.id}/upper_arm", type="capsule", fromto=_fmt((0, side * 0.24, shoulder_z, *elbow)), size="0.045", rgba=shirt)
        self.geom(body, name=f"{p.id}/forearm", type="capsule", fromto=_fmt((*elbow, lx - 0.07, ly, hz - 0.02)), size="0.04", rgba=skin)
        # Open palm, facing up, with a low rim of fingers so a handed object rests there.
        self.geom(body, name=f"{p.id}/palm", type="box", pos=_fmt((lx, ly, hz - 0.01)), size="0.07 0.06 0.01", rgba=skin, friction="1.2 0.01 0.001")
        self.geom(body, name=f"{p.id}/fingers", type="box", pos=_fmt((lx + 0.075, ly, hz + 0.005)), size="0.008 0.06 0.018", rgba=skin)
        self.geom(body, name=f"{p.id}/thumb", type="box", pos=_fmt((lx, ly - side * 0.065, hz + 0.005)), size="0.05 0.008 0.015", rgba=skin)
        ET.SubElement(body, "site", name=f"{p.id}/hand", pos=_fmt((lx, ly, hz)), size="0.01", rgba="1 0 0 0")
        other = -side
        self.geom(body, name=f"{p.id}/idle_arm", type="capsule", fromto=_fmt((0, other * 0.24, shoulder_z, 0.02, other * 0.26, hip - 0.02)), size="0.045", rgba=shirt)
        self.index.people.append(p.id)


def build_mjcf(scenario: Scenario) -> tuple[str, SceneIndex]:
    """The scene as MJCF text (which includes `humanoid.xml`) and the index of its entities."""
    scene = _Scene(scenario)
    scene.room()
    scene.lights()
    scene.overview_camera()
    for f in scenario.furniture:
        scene.furniture(f)
    for o in scenario.objects:
        scene.scene_object(o)
    for p in scenario.people:
        scene.person(p)
    ET.indent(scene.root)
    return ET.tostring(scene.root, encoding="unicode"), scene.index


def compile_model(scenario: Scenario):
    """The compiled MuJoCo model of a scenario and its index."""
    import mujoco

    xml, index = build_mjcf(scenario)
    model = mujoco.MjModel.from_xml_string(xml, assets={HUMANOID_XML.name: HUMANOID_XML.read_bytes()})
    return model, index


__all__ = ["SceneIndex", "build_mjcf", "compile_model", "TIMESTEP", "FLOOR_ID"]
