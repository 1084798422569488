"""Headless rendering for every test, whatever a test module imports first."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
