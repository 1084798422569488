"""Drawing what perception believes on the head frame, to check it by eye."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from perception.belief import Belief
from perception.geometry import project
from perception.perception import Perception


def draw_detections(rgb: np.ndarray, perception: Perception, belief: Belief, scale: int = 2) -> Image.Image:
    """The head frame, enlarged, with each matched detection's box, id and position, and people's hands."""
    img = Image.fromarray(rgb).resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    dbg = perception.debug
    matched = {id(d): oid for oid, d in dbg.matches.items()}
    for det in dbg.detections:
        x0, y0, x1, y1 = det.bbox()
        oid = matched.get(id(det))
        colour = (0, 255, 0) if oid else (255, 0, 255)
        draw.rectangle([x0 * scale, y0 * scale, (x1 + 1) * scale, (y1 + 1) * scale], outline=colour, width=2)
        label = oid or f"? {det.colour} {det.category}"
        if oid:
            p = belief.objects[oid].position
            label += f" ({p[0]:.2f},{p[1]:.2f},{p[2]:.2f})"
        draw.text((x0 * scale, max(y0 * scale - 12, 0)), label, fill=colour)
        if oid and dbg.camera is not None:
            uv, _ = project(perception.K, dbg.camera, np.asarray(belief.objects[oid].position)[None])
            u, v = uv[0, 0] * scale, uv[0, 1] * scale
            draw.line([u - 5, v, u + 5, v], fill=(255, 255, 0), width=2)
            draw.line([u, v - 5, u, v + 5], fill=(255, 255, 0), width=2)
    for pid, person in belief.people.items():
        if person.hand is None or dbg.camera is None:
            continue
        uv, z = project(perception.K, dbg.camera, np.asarray(person.hand)[None])
        if z[0] > 0:
            u, v = uv[0, 0] * scale, uv[0, 1] * scale
            draw.ellipse([u - 6, v - 6, u + 6, v + 6], outline=(0, 200, 255), width=2)
            draw.text((u + 8, v - 6), f"{pid} hand", fill=(0, 200, 255))
    true_preds = sorted(k for k, p in belief.predicates.items() if p >= 0.5 and not k.startswith("near"))
    draw.text((4, 4), "\n".join(true_preds[:14]), fill=(255, 255, 255))
    return img


def save_detections(rgb: np.ndarray, perception: Perception, belief: Belief, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_detections(rgb, perception, belief).save(out)
    return out
