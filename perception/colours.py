"""Pixel colour → named colour, by a look-up table learned from rendered frames.

Rendered colour is the material colour times the lighting (shading on a cylinder's side,
the light intensity drawn at reset, white ambient and specular light), so a fixed HSV band
per name misreads dark sides and highlights. Instead a 32x32x32 RGB table is fitted once on
rendered frames whose labels come from the simulator's segmentation masks (scenes with
randomised object colours, shades and lights: see `perception.training`); at run time
labelling a pixel is one table look-up. The table is data (`data/colour_lut.npz`), so it
can be refitted without touching code.
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


@dataclass
class ColourTable:
    """A quantised RGB → class table (UNKNOWN where training never saw anything like it)."""

    table: np.ndarray  # (2**BITS)**3 int8

    @classmethod
    def load(cls, path: Path = DEFAULT_LUT) -> ColourTable:
        with np.load(path) as data:
            classes = tuple(str(c) for c in data["classes"])
            if classes != CLASSES:
                raise ValueError(f"{path} was fitted for classes {classes}, expected {CLASSES}; refit it")
            return cls(data["table"].astype(np.int8))

    def save(self, path: Path = DEFAULT_LUT) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, table=self.table, classes=np.array(CLASSES))
        return path

    def classify(self, rgb: np.ndarray) -> np.ndarray:
        """Class index per pixel of a uint8 (..., 3) array (UNKNOWN for unseen colours)."""
        q = (rgb >> (8 - BITS)).astype(np.int32)
        return self.table[(q[..., 0] << (2 * BITS)) | (q[..., 1] << BITS) | q[..., 2]]


def fit_table(counts: np.ndarray, fill_radius: float = 2.5) -> ColourTable:
    """Table from per-cell class counts ((2**BITS)**3, n_classes): majority class, nearest fill nearby."""
    from scipy import ndimage

    n = 2**BITS
    total = counts.sum(axis=1)
    table = np.where(total > 0, counts.argmax(axis=1), UNKNOWN).astype(np.int8)
    grid = table.reshape(n, n, n)
    dist, idx = ndimage.distance_transform_edt(grid == UNKNOWN, return_indices=True)
    filled = grid[tuple(idx)]
    filled[dist > fill_radius] = UNKNOWN
    return ColourTable(filled.reshape(-1).astype(np.int8))


def cell_index(rgb: np.ndarray) -> np.ndarray:
    """Flat table cell of each uint8 RGB pixel (for fitting)."""
    q = (rgb >> (8 - BITS)).astype(np.int32)
    return (q[..., 0] << (2 * BITS)) | (q[..., 1] << BITS) | q[..., 2]
