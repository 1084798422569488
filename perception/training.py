"""Fitting perception's learned parts on rendered frames, labelled by segmentation masks.

Offline only: this drives the simulator and reads its segmentation images (ground truth
is fine for making training labels), never at run time. Scenes are the built-in scenarios
with their objects recoloured at random from the whole catalogue, so every named colour
is seen on every category under the randomised shades and lights.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import structlog

from perception.colours import BITS, CLASS_INDEX, CLASSES, DEFAULT_LUT, ColourTable, cell_index, fit_table

log = structlog.get_logger(__name__)
SKIN_PARTS = ("palm", "fingers", "thumb", "forearm", "neck", "head")


def _geom_classes(world) -> np.ndarray:
    """Class of each geom of a world's model (-1: robot or unlabelled)."""
    model = world.model
    sc = world.scenario
    objects = {o.id: o for o in sc.objects}
    people = {p.id: p for p in sc.people}
    furniture = {f.id: f for f in sc.furniture}
    out = np.full(model.ngeom, -1, dtype=np.int32)
    for g in range(model.ngeom):
        name = model.geom(g).name
        owner, _, part = name.partition("/")
        if owner in objects:
            o = objects[owner]
            part_colour = {"cap": "white", "label": "white", "lid": "grey", "opening": "black"}.get(part, o.colour)
            out[g] = CLASS_INDEX[part_colour]
        elif owner in people:
            p = people[owner]
            if part in SKIN_PARTS:
                out[g] = CLASS_INDEX["skin"]
            elif part in ("torso", "upper_arm", "idle_arm"):
                out[g] = CLASS_INDEX[p.shirt_colour]
        elif owner in furniture and part in ("top", "board0", "board1", "wall0", "wall1", "wall2", "wall3", "seat"):
            out[g] = CLASS_INDEX[furniture[owner].look]
        elif name.startswith("wall"):
            out[g] = CLASS_INDEX[sc.room.wall_colour]
        elif name == "floor":
            out[g] = CLASS_INDEX[sc.room.floor_colour]
    return out


def recoloured(scenario, rng: np.random.Generator):
    """The scenario with each object's colour drawn from the whole catalogue."""
    from scenarios.catalog import COLOURS

    names = list(COLOURS)
    objects = [o.model_copy(update={"colour": names[int(rng.integers(len(names)))]}) for o in scenario.objects]
    return scenario.model_copy(update={"objects": objects})


def fit_colour_table(
    scenes: int = 24, frames_per_scene: int = 6, seed: int = 0, out: Path = DEFAULT_LUT,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Render labelled frames (head and wrist cameras, random head poses) and fit the colour table."""
    from scenarios.loading import builtin_scenarios, load_scenario
    from scenarios.world import SimWorld, WorldConfig

    rng = np.random.default_rng(seed)
    n_cells = 2 ** (3 * BITS)
    counts = np.zeros((n_cells, len(CLASSES)), dtype=np.int64)
    names = sorted(builtin_scenarios())
    done = 0
    for k in range(scenes):
        sc = recoloured(load_scenario(names[k % len(names)]), rng)
        world = SimWorld(sc, WorldConfig(cameras=("head",), head_depth=False))
        world.reset(seed=int(rng.integers(1 << 30)))
        classes = _geom_classes(world)
        for _ in range(frames_per_scene):
            action = world.hold_action()
            action[-2] = rng.uniform(-0.9, 0.9)
            action[-1] = rng.uniform(0.35, 1.0)
            for _ in range(6):
                obs, *_ = world.step(action)
            for cam in ("head", "left_wrist", "right_wrist"):
                rgb = obs["observation.images.head"] if cam == "head" else world.render_camera(cam)
                seg = world.render_camera(cam, kind="segmentation")
                valid = seg >= 0
                cls = np.full(seg.shape, -1, dtype=np.int32)
                cls[valid] = classes[seg[valid]]
                keep = cls >= 0
                np.add.at(counts, (cell_index(rgb[keep]), cls[keep]), 1)
            done += 1
            if progress:
                progress(done, scenes * frames_per_scene)
        world.close()
    table = fit_table(counts)
    log.info("colour_table_fitted", frames=done, cells=int((table.table >= 0).sum()), path=str(out))
    return table.save(out)
