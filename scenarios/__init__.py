"""Scenario files and the MuJoCo world built from them.

Offscreen rendering needs a headless GL backend; EGL is the default here (Mesa's software
EGL on a CPU machine), and users may set MUJOCO_GL=osmesa or glfw themselves.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
