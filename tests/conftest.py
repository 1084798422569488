"""Headless rendering for every test, whatever a test module imports first."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")


def pytest_configure(config):  # noqa: ARG001 - pytest hook signature
    """Library debug events go nowhere unless a test asks: structlog's default prints them all."""
    from agent.logging import configure_logging

    configure_logging()
