"""Pictures of a scenario for people: the head camera beside an overview of the room."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from scenarios.schema import Scenario
from scenarios.world import SimWorld, WorldConfig


def labelled(image: np.ndarray, label: str) -> np.ndarray:
    """The image with a caption in its top-left corner."""
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    w = 8 + 6 * len(label)
    draw.rectangle((0, 0, w, 16), fill=(0, 0, 0))
    draw.text((4, 2), label, fill=(255, 255, 255))
    return np.asarray(pil)


def side_by_side(world: SimWorld, size: tuple[int, int], caption: str = "") -> np.ndarray:
    """Head camera | overview, with shadows from every light (for people, not for speed)."""
    saved = world.model.light_castshadow.copy()
    world.model.light_castshadow[:] = 1
    try:
        head = world.render_camera("head_camera", size)
        overview = world.render_camera("overview", size)
    finally:
        world.model.light_castshadow[:] = saved
    prefix = f"{caption}  " if caption else ""
    return np.concatenate([labelled(head, f"{prefix}head camera"), labelled(overview, "overview")], axis=1)


def render_preview(scenario: Scenario, out: Path, seed: int = 0, randomise: bool = True, size: tuple[int, int] = (480, 640)) -> Path:
    """Reset the scenario with `seed` and save head camera | overview as one PNG."""
    world = SimWorld(scenario, WorldConfig(randomise=randomise, cameras=("head",), head_depth=False))
    try:
        world.reset(seed=seed)
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(side_by_side(world, size, f"{scenario.name} seed {seed}")).save(out)
    finally:
        world.close()
    return out
