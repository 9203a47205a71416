"""ToyCity's colour tables (walls, car paints, skin, hair, trousers) and colour helpers."""

from __future__ import annotations

import colorsys

from .rand import Rand

Rgb = tuple[float, float, float]

WALLS: list[Rgb] = [
    (214, 196, 162),  # cream
    (200, 174, 130),  # sand
    (206, 156, 98),  # ochre
    (164, 84, 60),  # brick
    (136, 74, 58),  # dark brick
    (172, 164, 152),  # concrete
    (230, 222, 206),  # white plaster
    (212, 176, 172),  # pale pink
    (186, 190, 164),  # pale green
]
#: Car body paints with their share of the street; black ``(0, 0, 0)`` means any hue.
CARS: list[tuple[Rgb, float]] = [
    ((232, 232, 228), 0.20),  # white
    ((168, 171, 175), 0.15),  # silver
    ((92, 95, 100), 0.11),  # grey
    ((26, 26, 30), 0.13),  # black
    ((168, 24, 26), 0.09),  # red
    ((32, 62, 150), 0.08),  # blue
    ((24, 34, 78), 0.05),  # navy
    ((38, 92, 56), 0.04),  # green
    ((222, 182, 30), 0.03),  # yellow
    ((215, 100, 26), 0.03),  # orange
    ((188, 168, 128), 0.03),  # beige
    ((0, 0, 0), 0.06),  # any hue
]
CAR_WEIGHTS = [wt for _, wt in CARS]
SKIN: list[Rgb] = [(250, 214, 186), (232, 186, 150), (198, 146, 108), (156, 106, 72),
                   (104, 70, 48)]
HAIR: list[Rgb] = [(22, 16, 12), (58, 38, 24), (108, 76, 44), (196, 164, 104),
                   (150, 150, 150)]
TROUSERS: list[Rgb] = [(48, 66, 108), (30, 30, 36), (96, 98, 104), (168, 148, 116),
                       (60, 50, 44), (36, 48, 80)]
PAVING: list[Rgb] = [(158, 156, 150), (172, 162, 146), (140, 140, 138), (176, 170, 160)]
POLE_GREYS: list[Rgb] = [(140, 146, 154), (126, 132, 140), (152, 154, 158)]


def jitter(rng: Rand, rgb: Rgb, amount: float = 0.1) -> Rgb:
    """``rgb`` with a random gain of ``±amount`` and a smaller per-channel tint, clipped."""
    g = 1.0 + rng.uniform(-amount, amount)
    e = 0.3 * amount
    return (min(255.0, max(0.0, rgb[0] * g * (1.0 + rng.uniform(-e, e)))),
            min(255.0, max(0.0, rgb[1] * g * (1.0 + rng.uniform(-e, e)))),
            min(255.0, max(0.0, rgb[2] * g * (1.0 + rng.uniform(-e, e)))))


def hsv(h: float, s: float, v: float) -> Rgb:
    """An RGB colour (0..255) from hue (wrapped to [0, 1)), saturation and value."""
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return r * 255.0, g * 255.0, b * 255.0


def scale(rgb: Rgb, k: float) -> Rgb:
    """``rgb`` times ``k`` (a lit or shaded face of the same paint)."""
    return rgb[0] * k, rgb[1] * k, rgb[2] * k
