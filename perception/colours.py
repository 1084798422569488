"""Pixel colour → named colour, by a look-up table learned from rendered frames.

Rendered colour is the material colour times the lighting (shading on a cylinder's side,
the light intensity drawn at reset, white ambient and specular light), so a fixed HSV band
per name misreads dark sides and highlights. Instead a 32x32x32 RGB table is fitted once on
rendered frames whose labels come from the simulator's segmentation masks (scenes with
randomised object colours, shades and lights: see `perception.training`); at run time
labelling a pixel is one table look-up. The table is data (`data/colour_lut.npz`), so it
can be refitted without touching code (`vla-agent perception fit-colours`).

Shaded colours overlap: the dark side of an orange ball is the colour of a brown table.
The table therefore keeps, per cell, how often each name produced it, and a perception
restricts it to the names that can be in the foreground of its scene (the inventory's
colours, object parts, skin and shirts; furniture, walls and floor are removed by the
static map before colours matter). A cell then reads as the likeliest of those names, so
in a room whose only brown thing is the table, a shaded orange pixel reads orange.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scenarios.catalog import COLOURS

CLASSES: tuple[str, ...] = (*COLOURS.keys(), "skin")
"""Class index → name: the catalogue's named colours, then the skin of people."""
CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}
NEUTRAL = frozenset({"white", "grey", "black"})
"""Colours an object's parts (cup opening, can lid, bottle cap, box label) also have."""
UNKNOWN = -1
BITS = 5
DEFAULT_LUT = Path(__file__).resolve().parent / "data" / "colour_lut.npz"


SMOOTHING = 1.0
"""Cells: standard deviation of the kernel that spreads each name's training counts."""
MIN_DENSITY = 0.5
"""Smoothed training pixels a cell needs under its name to be labelled at all."""


@dataclass
class ColourTable:
    """A quantised RGB → class table (UNKNOWN where training never saw anything like it)."""

    table: np.ndarray  # (2**BITS)**3 int8
    counts: np.ndarray | None = None  # ((2**BITS)**3, len(CLASSES)) training pixels of each class per cell

    @classmethod
    def load(cls, path: Path = DEFAULT_LUT) -> ColourTable:
        with np.load(path) as data:
            classes = tuple(str(c) for c in data["classes"])
            if classes != CLASSES:
                raise ValueError(f"{path} was fitted for classes {classes}, expected {CLASSES}; refit it")
            counts = data["counts"].astype(np.float32) if "counts" in data.files else None
            return cls(data["table"].astype(np.int8), counts)

    def save(self, path: Path = DEFAULT_LUT) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {} if self.counts is None else {"counts": self.counts.astype(np.uint32)}
        np.savez_compressed(path, table=self.table, classes=np.array(CLASSES), **extra)
        return path

    def restricted_to(self, names: set[str] | frozenset[str]) -> ColourTable:
        """The table that only answers `names` (or UNKNOWN).

        Each cell takes the allowed name under which training produced it most often
        relative to that name's pixels overall (its likelihood, so the table's and walls'
        sheer area does not outvote a small object's shaded side). Counts are smoothed over
        neighbouring cells first (a kernel density), so a shade training happened to render
        only as a forbidden name still reads as the nearest allowed one; a cell far from
        everything the names ever produced stays UNKNOWN. Without counts, other names'
        cells become UNKNOWN.
        """
        unknown = sorted(set(names) - set(CLASSES))
        if unknown:
            raise ValueError(f"names: unknown colour classes {unknown}; known: {list(CLASSES)}")
        allowed = np.zeros(len(CLASSES), dtype=bool)
        allowed[[CLASS_INDEX[n] for n in names]] = True
        if self.counts is None:
            keep = (self.table >= 0) & allowed[np.maximum(self.table, 0)]
            return ColourTable(np.where(keep, self.table, UNKNOWN).astype(np.int8))
        from scipy import ndimage

        n = 2**BITS
        counts = np.where(allowed[None, :], self.counts, 0.0)
        density = ndimage.gaussian_filter(counts.reshape(n, n, n, -1), sigma=(SMOOTHING, SMOOTHING, SMOOTHING, 0),
                                          mode="nearest", truncate=2.5).reshape(n**3, -1)
        likelihood = density / np.maximum(counts.sum(axis=0, keepdims=True), 1.0)
        best = likelihood.argmax(axis=1)
        seen = density[np.arange(len(best)), best] >= MIN_DENSITY
        return ColourTable(np.where(seen, best, UNKNOWN).astype(np.int8), counts)

    def classify(self, rgb: np.ndarray) -> np.ndarray:
        """Class index per pixel of a uint8 (..., 3) array (UNKNOWN for unseen colours)."""
        q = (rgb >> (8 - BITS)).astype(np.int32)
        return self.table[(q[..., 0] << (2 * BITS)) | (q[..., 1] << BITS) | q[..., 2]]


def fit_table(counts: np.ndarray, fill_radius: float = 2.5) -> ColourTable:
    """Table from per-cell class counts ((2**BITS)**3, n_classes): the majority class; a cell
    training never saw takes the counts of the nearest seen cell within `fill_radius`."""
    from scipy import ndimage

    n = 2**BITS
    seen = counts.sum(axis=1) > 0
    dist, idx = ndimage.distance_transform_edt(~seen.reshape(n, n, n), return_indices=True)
    nearest = np.ravel_multi_index(tuple(i.reshape(-1) for i in idx), (n, n, n))
    filled = counts[nearest].astype(np.float32)
    filled[dist.reshape(-1) > fill_radius] = 0
    table = np.where(filled.sum(axis=1) > 0, filled.argmax(axis=1), UNKNOWN).astype(np.int8)
    return ColourTable(table, filled)


def cell_index(rgb: np.ndarray) -> np.ndarray:
    """Flat table cell of each uint8 RGB pixel (for fitting)."""
    q = (rgb >> (8 - BITS)).astype(np.int32)
    return (q[..., 0] << (2 * BITS)) | (q[..., 1] << BITS) | q[..., 2]
