"""A minimal test scene around the humanoid: floor, a 0.75 m table, a cup, lights.

Kept in tests (not in scenarios/) because the real room is built by the scenario builder;
this one only exists so that the robot's physics can be checked on its own.
"""

from __future__ import annotations

import mujoco

from scenarios.robot import HUMANOID_XML

TABLE_HEIGHT = 0.75
CUP_RADIUS = 0.035
CUP_HEIGHT = 0.10
CUP_MASS = 0.15


def scene_xml(
    table_x: float = 0.75,
    table_height: float = TABLE_HEIGHT,
    table_size: tuple[float, float] = (0.35, 0.6),
    cup_pos: tuple[float, float] | None = (0.55, 0.22),
    integrator: str = "implicitfast",
    extra: str = "",
) -> str:
    """Scene XML string with the table centred at (table_x, 0) (half sizes table_size).

    The cup rests upright on the table top at cup_pos (x, y); None leaves it out. ``extra``
    is MJCF inserted into the worldbody (more objects, with class="world").
    """
    hx, hy = table_size
    top = table_height
    cup = ""
    if cup_pos is not None:
        cz = top + CUP_HEIGHT / 2 + 0.0005
        cup = f"""
    <body name="cup" pos="{cup_pos[0]} {cup_pos[1]} {cz}">
      <freejoint name="cup_free"/>
      <geom name="cup" class="world" type="cylinder" size="{CUP_RADIUS} {CUP_HEIGHT / 2}"
            mass="{CUP_MASS}" friction="1 0.005 0.0001" rgba="0.85 0.1 0.1 1"/>
    </body>"""
    return f"""
<mujoco model="robot_test_scene">
  <option timestep="0.002" cone="elliptic" impratio="10" noslip_iterations="10"
          integrator="{integrator}"/>
  <visual>
    <quality shadowsize="1024" offsamples="0"/>
    <global offwidth="640" offheight="480"/>
  </visual>
  <default>
    <default class="world">
      <geom contype="1" conaffinity="3"/>
    </default>
  </default>
  <include file="humanoid.xml"/>
  <worldbody>
    <light name="sun" pos="0 0 3" dir="0 0 -1" directional="true" diffuse="0.7 0.7 0.7"/>
    <light name="fill" pos="2 -2 2.5" dir="-1 1 -1" diffuse="0.3 0.3 0.3" castshadow="false"/>
    <geom name="floor" class="world" type="plane" size="5 5 0.1" rgba="0.55 0.5 0.45 1"/>
    <body name="table" pos="{table_x} 0 0">
      <geom name="table_top" class="world" type="box" size="{hx} {hy} 0.02" pos="0 0 {top - 0.02}"
            rgba="0.6 0.42 0.25 1"/>
      <geom name="table_leg" class="world" type="box" size="0.04 0.04 {(top - 0.04) / 2}"
            pos="0 0 {(top - 0.04) / 2}" rgba="0.4 0.3 0.2 1"/>
    </body>{cup}{extra}
    <camera name="side" pos="0.5 -2.6 1.3" xyaxes="1 0 0 0 0.3 1"/>
    <camera name="front" pos="2.6 -1.2 1.6" xyaxes="0.42 0.91 0 -0.35 0.16 0.92"/>
  </worldbody>
</mujoco>
"""


def build_scene(**kwargs: object) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """Compile scene_xml(**kwargs) with humanoid.xml as an in-memory asset."""
    xml = scene_xml(**kwargs)  # type: ignore[arg-type]
    model = mujoco.MjModel.from_xml_string(xml, assets={"humanoid.xml": HUMANOID_XML.read_bytes()})
    data = mujoco.MjData(model)
    return model, data


def home_scene(**kwargs: object) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """build_scene(**kwargs) with the robot at the origin in its home posture, forwarded."""
    from scenarios.robot import set_home_posture

    model, data = build_scene(**kwargs)
    set_home_posture(model, data)
    mujoco.mj_forward(model, data)
    return model, data


def geom_contact(model: mujoco.MjModel, data: mujoco.MjData, geom_a: str, geom_b: str) -> bool:
    """Whether the two named geoms are in contact now."""
    pair = {model.geom(geom_a).id, model.geom(geom_b).id}
    return any({int(g1), int(g2)} == pair for g1, g2 in zip(data.contact.geom1, data.contact.geom2))
