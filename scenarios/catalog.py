"""The vocabulary scenario files draw from: named colours, object categories, furniture kinds.

Scenario authors name things ("a red cup on the table"); this module turns the names into
the physical and visual parameters the world builder needs. Keeping the catalogue as data
(not scattered constants) is what lets validation suggest the nearest valid name.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class NamedColour:
    """A colour name and the band of shades that still reads as that name.

    Randomisation draws hue, saturation and value inside the band, so a policy sees many
    shades of "red" yet never one a person would call orange.
    """

    name: str
    rgb: tuple[float, float, float]
    hue_jitter: float = 0.02
    sat_range: tuple[float, float] = (0.75, 1.0)
    val_range: tuple[float, float] = (0.7, 1.0)

    def shade(self, rng: np.random.Generator | None, amount: float = 1.0) -> tuple[float, float, float]:
        """A shade of this colour; `amount` scales the band (0 gives the base colour)."""
        if rng is None or amount <= 0.0:
            return self.rgb
        h, s, v = colorsys.rgb_to_hsv(*self.rgb)
        h = (h + rng.uniform(-1, 1) * self.hue_jitter * amount) % 1.0
        lo, hi = self.sat_range
        s = float(np.clip(s + rng.uniform(lo - s, hi - s) * amount, 0.0, 1.0)) if s > 0.05 else s
        lo, hi = self.val_range
        v = float(np.clip(v + rng.uniform(lo - v, hi - v) * amount, 0.0, 1.0))
        return tuple(float(c) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


def _grey(name: str, value: float, spread: float = 0.06) -> NamedColour:
    return NamedColour(name, (value, value, value), 0.0, (0.0, 0.0), (value - spread, value + spread))


COLOURS: dict[str, NamedColour] = {
    c.name: c
    for c in (
        NamedColour("red", (0.85, 0.08, 0.08)),
        NamedColour("orange", (0.95, 0.45, 0.05), hue_jitter=0.012),
        NamedColour("yellow", (0.95, 0.85, 0.1), hue_jitter=0.012),
        NamedColour("green", (0.1, 0.65, 0.15), hue_jitter=0.03, val_range=(0.5, 0.8)),
        NamedColour("blue", (0.1, 0.25, 0.85), hue_jitter=0.025),
        NamedColour("purple", (0.5, 0.15, 0.7), hue_jitter=0.02, val_range=(0.55, 0.8)),
        NamedColour("pink", (0.95, 0.45, 0.7), sat_range=(0.4, 0.6), val_range=(0.85, 1.0)),
        NamedColour("brown", (0.45, 0.27, 0.1), hue_jitter=0.015, val_range=(0.35, 0.5)),
        _grey("white", 0.93, 0.05),
        _grey("grey", 0.5),
        _grey("black", 0.08, 0.04),
    )
}

Shape = Literal["cylinder", "box", "sphere"]


@dataclass(frozen=True)
class ObjectCategory:
    """A graspable kind of thing with its default geometry and physics.

    `size` follows MuJoCo's geom size convention for the shape: cylinder (radius,
    half-height), box (half-x, half-y, half-z), sphere (radius,).
    """

    name: str
    shape: Shape
    size: tuple[float, ...]
    mass: float
    friction: float
    aliases: tuple[str, ...] = ()
    drink: bool = False

    def height(self, size: tuple[float, ...] | None = None) -> float:
        s = size or self.size
        return 2 * s[0] if self.shape == "sphere" else 2 * s[-1]

    def half_extents(self) -> tuple[float, ...]:
        """Half its size along each axis it can rest on: centre heights standing or lying."""
        s = self.size
        return (*(s[:2] if self.shape == "box" else s[:1]), self.height() / 2)

    def footprint_radius(self, size: tuple[float, ...] | None = None) -> float:
        """Radius of the circle the object covers on a surface (boxes: half-diagonal)."""
        s = size or self.size
        if self.shape == "box":
            return float(np.hypot(s[0], s[1]))
        return float(s[0])


CATEGORIES: dict[str, ObjectCategory] = {
    c.name: c
    for c in (
        ObjectCategory("cup", "cylinder", (0.035, 0.05), 0.15, 1.0, ("mug", "glass"), drink=True),
        ObjectCategory("bottle", "cylinder", (0.033, 0.11), 0.35, 1.0, ("water bottle",), drink=True),
        ObjectCategory("can", "cylinder", (0.033, 0.06), 0.3, 1.0, ("soda", "tin"), drink=True),
        ObjectCategory("box", "box", (0.03, 0.04, 0.05), 0.2, 1.0, ("carton", "package")),
        ObjectCategory("ball", "sphere", (0.035,), 0.08, 1.0, ("toy ball",)),
    )
}

FurnitureKind = Literal["table", "counter", "shelf", "bin", "sofa"]


@dataclass(frozen=True)
class FurnitureDefaults:
    """Default size (length x, depth y, height z, metres) and look of a furniture kind."""

    kind: FurnitureKind
    size: tuple[float, float, float]
    colour: str
    surface: bool  # objects can rest on top of it
    container: bool = False  # objects can be put in it


FURNITURE: dict[str, FurnitureDefaults] = {
    f.kind: f
    for f in (
        FurnitureDefaults("table", (1.2, 0.8, 0.75), "brown", surface=True),
        FurnitureDefaults("counter", (1.6, 0.6, 0.9), "white", surface=True),
        FurnitureDefaults("shelf", (0.8, 0.35, 1.2), "brown", surface=True),
        FurnitureDefaults("bin", (0.4, 0.4, 0.4), "grey", surface=False, container=True),
        FurnitureDefaults("sofa", (1.8, 0.8, 0.8), "blue", surface=False),
    )
}

SHELF_BOARD_HEIGHTS = (0.4, 0.8)
"""Heights of a shelf's inner boards as fractions of its height; its top is the last level."""


def nearest(name: str, choices: list[str] | tuple[str, ...]) -> str | None:
    """The closest valid name, for 'did you mean' hints in errors."""
    import difflib

    found = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return found[0] if found else None
