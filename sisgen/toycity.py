"""ToyCity: the built-in procedural street-scene dataset.

ToyCity renders a street seen from a car's dashboard camera, as a pair (label map, photo),
with nothing but numpy and OpenCV, in a few milliseconds per sample. It is the default
dataset of the quickstart: a tiny SPADE generator learns it on a laptop CPU in minutes, and
each class has a look a person recognises in a generated contact sheet.

Scene model. A pinhole camera at height ``hc`` looks down a straight street. The ground
plane holds the road (2-4 lanes, optional parking strips, dashed lane lines, edge lines,
sometimes a zebra crossing), a sidewalk on each side (paving tiles, a bright curb) and
optionally a grass strip. Two facade planes run parallel to the road and recede to the
vanishing point; they are split into blocks of varied height (buildings with window
grids, or rows of trees), and a far wall across the street closes the view with a skyline
of buildings and trees of varied height along the horizon. Above it all is a sky gradient
with clouds. Objects stand on the ground and are drawn back to front, so nearer ones
occlude farther ones: trees (trunk + leafy crown), street lamps and sign posts (pole +
sign panel), cars in the lanes and parked at the curbs (3-D boxes: body, cabin with dark
glass, wheels, lights, plate; body colours from a realistic palette) and pedestrians on the
sidewalks and crosswalk (skin-tone head, hair, shirt/dress, trousers, shoes). Every size
follows from the perspective, so the scale of cars and people is consistent with their depth.

Rendering. Geometry is rasterised once into a *primitive map* (a ``uint16`` id per pixel,
drawn with aliased OpenCV fills at the target resolution); the label map, the instance map
and the photo are all functions of that map, so labels and photo agree pixel for pixel.
Stuff regions (sky, road, sidewalk, building, vegetation, terrain) are textured from their
own coordinates (ground-plane or facade coordinates) plus noise fields; poles, signs, cars
and people carry flat per-part colours. A per-image light (gain, colour temperature, sun
side with cast shadows on the ground, contact shadows under cars and people, vignetting,
sensor noise) varies the look without hiding the classes.

Determinism. The scene (layout, objects, colours) is drawn from a generator seeded with a
hash of ``(seed, split, index)``; the pixel noise from one seeded with ``(seed, split,
index, H, W)``. So a sample is a pure function of those arguments, independent of call
order, and the same index at another resolution shows the same street.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np

from .labelmap import LabelMap
from .vocab import ClassInfo, Vocabulary

# Class ids (the ToyCity id space).
SKY, ROAD, SIDEWALK, BUILDING, VEGETATION, TERRAIN, POLE, SIGN, CAR, PERSON = range(10)

_CLASSES = [
    # id, name, Cityscapes display colour, is_thing
    (SKY, "sky", (70, 130, 180), False),
    (ROAD, "road", (128, 64, 128), False),
    (SIDEWALK, "sidewalk", (244, 35, 232), False),
    (BUILDING, "building", (70, 70, 70), False),
    (VEGETATION, "vegetation", (107, 142, 35), False),
    (TERRAIN, "terrain", (152, 251, 152), False),
    (POLE, "pole", (153, 153, 153), False),
    (SIGN, "traffic sign", (220, 220, 0), False),
    (CAR, "car", (0, 0, 142), True),
    (PERSON, "person", (220, 20, 60), True),
]
_NUM_CLASSES = len(_CLASSES)
_TEXTURED = (SKY, ROAD, SIDEWALK, BUILDING, VEGETATION, TERRAIN)
_FIRST_PRIM = 16  # primitive ids below this are "textured stuff of class id"

_Rgb = tuple[float, float, float]
_RING10 = [(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * np.pi, 10, endpoint=False)]
_RING12 = [(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]


def toycity_vocabulary() -> Vocabulary:
    """The ToyCity class list.

    Returns:
        Vocabulary ``toycity`` with ids 0..9: sky, road, sidewalk, building, vegetation,
        terrain, pole, traffic sign, car, person (car and person are things), in
        Cityscapes display colours.
    """
    return Vocabulary("toycity", [ClassInfo(i, n, c, t) for i, n, c, t in _CLASSES])


# ----------------------------------------------------------------------------- palettes
_WALLS: list[_Rgb] = [
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
_CARS: list[tuple[_Rgb, float]] = [
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
_CAR_WEIGHTS = [wt for _, wt in _CARS]
_SKIN: list[_Rgb] = [(250, 214, 186), (232, 186, 150), (198, 146, 108), (156, 106, 72),
                     (104, 70, 48)]
_HAIR: list[_Rgb] = [(22, 16, 12), (58, 38, 24), (108, 76, 44), (196, 164, 104),
                     (150, 150, 150)]
_TROUSERS: list[_Rgb] = [(48, 66, 108), (30, 30, 36), (96, 98, 104), (168, 148, 116),
                         (60, 50, 44), (36, 48, 80)]


class _Rand:
    """A fast scalar random stream: blocks of floats from a seeded numpy generator.

    Scene construction draws a few hundred scalars; pulling them from a pre-drawn block is
    several times faster than calling ``Generator.uniform`` for each, and just as
    deterministic.
    """

    def __init__(self, seed: int) -> None:
        self._gen = np.random.default_rng(seed)
        self._buf: list[float] = []

    def random(self) -> float:
        """A float in ``[0, 1)``."""
        if not self._buf:
            self._buf = self._gen.random(512).tolist()
        return self._buf.pop()

    def uniform(self, a: float, b: float) -> float:
        """A float in ``[a, b)``."""
        return a + (b - a) * self.random()

    def integers(self, a: int, b: int | None = None) -> int:
        """An int in ``[a, b)`` (or ``[0, a)`` when ``b`` is omitted)."""
        if b is None:
            a, b = 0, a
        return min(a + int((b - a) * self.random()), b - 1)

    def weighted(self, weights: list[float]) -> int:
        """An index drawn with probabilities proportional to ``weights``."""
        r = self.random() * sum(weights)
        for i, wt in enumerate(weights):
            r -= wt
            if r < 0:
                return i
        return len(weights) - 1


def _jitter(rng: _Rand, rgb: _Rgb, amount: float = 0.1) -> _Rgb:
    g = 1.0 + rng.uniform(-amount, amount)
    e = 0.3 * amount
    return (min(255.0, max(0.0, rgb[0] * g * (1.0 + rng.uniform(-e, e)))),
            min(255.0, max(0.0, rgb[1] * g * (1.0 + rng.uniform(-e, e)))),
            min(255.0, max(0.0, rgb[2] * g * (1.0 + rng.uniform(-e, e)))))


def _hsv(h: float, s: float, v: float) -> _Rgb:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return r * 255.0, g * 255.0, b * 255.0


def _scale(rgb: _Rgb, k: float) -> _Rgb:
    return rgb[0] * k, rgb[1] * k, rgb[2] * k


def _choice(rng: _Rand, items: list) -> object:
    return items[int(rng.integers(len(items)))]


# ------------------------------------------------------------------------------ seeding
def _seed_int(*parts: object) -> int:
    text = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


@lru_cache(maxsize=16)
def _vignette(h: int, w: int) -> np.ndarray:
    y = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
    x = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
    v = 1.0 - 0.35 * (y[:, None] ** 2 + x[None, :] ** 2)
    return v.reshape(-1, 1).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, gh: int, gw: int) -> np.ndarray:
    """Value noise in [-1, 1]: a ``gh×gw`` random grid upsampled (cubic) to ``h×w``."""
    grid = rng.random((gh, gw), dtype=np.float32) * 2.0 - 1.0
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC).ravel()


def _hash01(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    h = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ (
        c.astype(np.int64) * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    return ((h >> 7) & 1023).astype(np.float32) / 1023.0


# ---------------------------------------------------------------------------- the scene
class _Scene:
    """One street: world parameters, objects and the rasterised primitive map."""

    def __init__(self, rng: _Rand, h: int, w: int) -> None:
        self.h, self.w = h, w
        u = rng.uniform
        # Camera.
        self.f = w * u(0.85, 1.15)
        self.hc = u(1.3, 1.8)
        self.yh = h * u(0.36, 0.48)
        self.xv = w * u(0.4, 0.6)
        # Road cross-section (X grows to the right; the camera is at X = 0).
        self.lanes = int(_choice(rng, [2, 2, 3, 4]))
        self.lane_w = u(2.9, 3.6)
        self.park_l = 2.2 if rng.random() < 0.35 else 0.0
        self.park_r = 2.2 if rng.random() < 0.45 else 0.0
        cam_lane = int(rng.integers(self.lanes // 2, self.lanes)) if self.lanes > 1 else 0
        self.road_l = self.park_l + (cam_lane + 0.5) * self.lane_w + u(-0.4, 0.4)
        self.road_r = self.park_l + self.park_r + self.lanes * self.lane_w - self.road_l
        self.two_way = rng.random() < 0.7
        self.side_l, self.side_r = u(1.8, 4.5), u(1.8, 4.5)
        self.grass_l = u(1.0, 4.0) if rng.random() < 0.4 else 0.0
        self.grass_r = u(1.0, 4.0) if rng.random() < 0.4 else 0.0
        self.xb_l = self.road_l + self.side_l + self.grass_l
        self.xb_r = self.road_r + self.side_r + self.grass_r
        self.z_far = u(70.0, 150.0)
        self.crosswalk = u(9.0, 30.0) if rng.random() < 0.35 else None
        # Buildings (a table shared by both facades and the far wall).
        self.bld: list[dict] = []
        self.left = self._segments(rng, self.z_far)
        self.right = self._segments(rng, self.z_far)
        xmin = -self.xv * self.z_far / self.f - 5.0
        xmax = (w - self.xv) * self.z_far / self.f + 5.0
        self.far = self._segments(rng, xmax - xmin, start=xmin, far=True)
        # Light.
        self.gain = u(0.8, 1.15)
        t = u(-1.0, 1.0)
        self.temp = np.array([1 + 0.09 * t, 1 + 0.01 * t, 1 - 0.09 * t], np.float32)
        self.sun = 1 if rng.random() < 0.5 else -1  # the facade on this side is lit
        self.sun_shadow = u(-self.road_l, self.road_r) if rng.random() < 0.5 else None
        # Stuff materials.
        self.overcast = rng.random() < 0.2
        if self.overcast:
            self.sky_top = _jitter(rng, (168, 178, 190), 0.08)
            self.sky_hor = _jitter(rng, (205, 210, 214), 0.05)
        else:
            self.sky_top = _hsv(u(0.56, 0.62), u(0.45, 0.7), u(0.72, 0.9))
            self.sky_hor = _hsv(u(0.54, 0.6), u(0.12, 0.3), u(0.88, 0.98))
        self.cloud_cover = u(0.0, 0.5) if not self.overcast else u(0.4, 0.8)
        g = u(62, 96)
        self.asphalt = (g, g, g * u(1.0, 1.06))
        self.yellow_center = self.two_way and rng.random() < 0.3
        self.paving = _jitter(rng, _choice(rng, [(158, 156, 150), (172, 162, 146),
                                                 (140, 140, 138), (176, 170, 160)]), 0.06)
        self.tile = u(0.35, 0.8)
        self.leaf = _hsv(u(0.22, 0.33), u(0.5, 0.75), u(0.33, 0.45))
        self.grass = _hsv(u(0.17, 0.24), u(0.45, 0.65), u(0.55, 0.68))
        # Primitive table: id -> class, object, flat colour.
        self.prim_cls: list[int] = list(range(_NUM_CLASSES)) + [255] * (
            _FIRST_PRIM - _NUM_CLASSES)
        self.prim_obj: list[int] = [0] * _FIRST_PRIM
        self.prim_rgb: list[_Rgb] = [(0.0, 0.0, 0.0)] * _FIRST_PRIM
        self.obj_cls: list[int] = [0]  # object index -> class (0 = none)
        self.objects: list[tuple[float, Callable[[], None]]] = []
        self.shadows: list[np.ndarray] = []
        self._place_objects(rng)

    # -------------------------------------------------------------------- layout
    def _segments(self, rng: _Rand, length: float, start: float = 0.0,
                  far: bool = False) -> dict:
        """Blocks along a facade: ends, building table index (or -1 for trees), heights."""
        u = rng.uniform
        ends, ids, heights, amp, freq, phase = [], [], [], [], [], []
        pos = start
        while pos < start + length:
            pos += u(6.0, 18.0) if far else u(7.0, 24.0)
            ends.append(pos)
            if rng.random() < (0.8 if far else 0.75):
                hgt = u(8.0, 38.0) if far else u(6.0, 26.0)
                ids.append(len(self.bld))
                heights.append(hgt)
                amp.append(0.0)
                self.bld.append(self._building(rng, hgt))
            else:
                ids.append(-1)
                heights.append(u(5.0, 12.0) if far else u(3.5, 9.0))
                amp.append(u(0.6, 1.8))
            freq.append(u(0.25, 0.6))
            phase.append(u(0.0, 6.3))
        return {
            "ends": np.array(ends, np.float32), "ids": np.array(ids, np.int32),
            "height": np.array(heights, np.float32), "amp": np.array(amp, np.float32),
            "freq": np.array(freq, np.float32), "phase": np.array(phase, np.float32),
        }

    @staticmethod
    def _building(rng: _Rand, height: float) -> dict:
        u = rng.uniform
        return {
            "wall": _jitter(rng, _choice(rng, _WALLS), 0.12),
            "glass": _jitter(rng, (52, 64, 82), 0.2),
            "ws": u(1.9, 3.4), "ww": u(0.35, 0.65), "fh": u(2.8, 3.6),
            "wh0": u(0.22, 0.38), "wh1": u(0.68, 0.85), "gf": u(3.2, 4.6),
            "top": height,
        }

    @staticmethod
    def _column_walls(seg: dict, u_coord: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per column: class, building index and wall height of the block hit at ``u``."""
        k = np.minimum(np.searchsorted(seg["ends"], u_coord), len(seg["ends"]) - 1)
        ids = seg["ids"][k]
        hgt = seg["height"][k] + seg["amp"][k] * (
            np.sin(u_coord * seg["freq"][k] + seg["phase"][k])
            + 0.5 * np.sin(u_coord * 2.3 * seg["freq"][k] + 1.7 * seg["phase"][k]))
        cls = np.where(ids >= 0, BUILDING, VEGETATION).astype(np.uint16)
        return cls, ids, hgt.astype(np.float32)

    def layout(self) -> np.ndarray:
        """Rasterise the stuff layout (ground, facades, far wall, sky) into ``prim``."""
        h, w, f, hc, yh, xv = self.h, self.w, self.f, self.hc, self.yh, self.xv
        yc = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
        xc = np.arange(w, dtype=np.float32) + 0.5
        # Far wall across the street at z_far.
        xf = (xc - xv) * self.z_far / f
        fcls, fid, fhgt = self._column_walls(self.far, xf)
        far_top = yh + (hc - fhgt) * f / self.z_far
        far_bot = yh + hc * f / self.z_far
        # Side facades at X = -xb_l (left of the vanishing point) and X = xb_r (right).
        dx = xc - xv
        left = dx < -1e-3
        xb = np.where(left, self.xb_l, self.xb_r)
        zs = np.where(np.abs(dx) > 1e-3, f * xb / np.maximum(np.abs(dx), 1e-3), np.inf)
        zs = zs.astype(np.float32)
        zc = np.minimum(zs, 1e6)
        lcls, lid, lhgt = self._column_walls(self.left, zc)
        rcls, rid, rhgt = self._column_walls(self.right, zc)
        scls = np.where(left, lcls, rcls)
        sid = np.where(left, lid, rid)
        shgt = np.where(left, lhgt, rhgt)
        valid = zs < self.z_far
        s_top = np.where(valid, yh + (hc - shgt) * f / zs, np.inf).astype(np.float32)
        s_bot = np.where(valid, yh + hc * f / zs, -np.inf).astype(np.float32)
        ground_top = np.where(valid, s_bot, far_bot)
        # Ground classes from the lateral position X on the ground plane.
        dy = np.maximum(yc - yh, 1e-3)
        xg = (xc - xv) * (hc / dy)
        edges = np.array([-self.road_l - self.side_l, -self.road_l, self.road_r,
                          self.road_r + self.side_r], np.float32)
        gtab = np.array([TERRAIN, SIDEWALK, ROAD, SIDEWALK, TERRAIN], np.uint16)
        gcls = gtab[np.searchsorted(edges, xg)]
        side = (yc >= s_top) & (yc < s_bot)
        farm = (yc >= far_top) & (yc < far_bot)
        prim = np.where(yc >= ground_top, gcls,
                        np.where(side, scls, np.where(farm, fcls, np.uint16(SKY))))
        self.prim = np.ascontiguousarray(prim, dtype=np.uint16)
        # Kept for texturing.
        self.xg = xg
        self.col_s_top, self.col_zs, self.col_sid, self.col_fid = s_top, zs, sid, fid
        self.col_du = np.where(valid, f * xb / np.maximum(zs, 1e-3) ** 2, 0).astype(np.float32)
        return self.prim

    # ------------------------------------------------------------------- objects
    def _new_obj(self, cls: int) -> int:
        self.obj_cls.append(cls)
        return len(self.obj_cls) - 1

    def _prim(self, cls: int, obj: int, rgb: _Rgb) -> int:
        self.prim_cls.append(cls)
        self.prim_obj.append(obj)
        self.prim_rgb.append(rgb)
        return len(self.prim_cls) - 1

    def _px(self, x: float, y: float, z: float) -> tuple[float, float]:
        return self.xv + self.f * x / z, self.yh + self.f * (self.hc - y) / z

    def _fill(self, pts: list[tuple[float, float]], pid: int) -> None:
        # Sub-pixel vertices (4 fractional bits); OpenCV puts integer coordinates on pixel
        # centres, ours are at +0.5.
        a = np.array([(round(x * 16.0 - 8.0), round(y * 16.0 - 8.0)) for x, y in pts],
                     np.int32)
        cv2.fillPoly(self.prim, [a], pid, cv2.LINE_8, 4)

    def _fill3(self, pts: list[tuple[float, float, float]], pid: int) -> None:
        f, xv, yh, hc = self.f, self.xv, self.yh, self.hc
        self._fill([(xv + f * x / z, yh + f * (hc - y) / z) for x, y, z in pts], pid)

    def _visible(self, x0: float, x1: float, y1: float, z: float) -> bool:
        """Whether a world box ``[x0, x1] × [0, y1]`` at depth ``z`` can touch the frame."""
        a, _ = self._px(x0, 0.0, z)
        b, top = self._px(x1, y1, z)
        return b >= -1 and a <= self.w + 1 and top <= self.h + 1

    def _place_objects(self, rng: _Rand) -> None:
        u = rng.uniform
        lw = self.lane_w
        # Cars in the driving lanes.
        for i in range(self.lanes):
            xc = -self.road_l + self.park_l + (i + 0.5) * lw + u(-0.3, 0.3)
            oncoming = self.two_way and i < self.lanes // 2
            z = u(7.0, 16.0) if abs(xc) < lw / 2 else u(4.0, 14.0)
            while z < 65.0:
                length = u(3.8, 4.9)
                if rng.random() < 0.45:
                    self._add_car(rng, xc, z, length, front=oncoming)
                z += length + u(4.0, 28.0)
        # Parked cars along the curbs.
        for sgn, park in ((-1, self.park_l), (1, self.park_r)):
            if not park:
                continue
            xc = sgn * (self.road_r if sgn > 0 else self.road_l) - sgn * 1.1
            z = u(2.0, 8.0)
            while z < 60.0:
                length = u(3.8, 4.9)
                if rng.random() < 0.55:
                    self._add_car(rng, xc + u(-0.15, 0.15), z, length, front=rng.random() < 0.3)
                z += length + u(0.6, 5.0)
        # Pedestrians on the sidewalks (and sometimes on the grass).
        for sgn in (-1, 1):
            edge = self.road_l if sgn < 0 else self.road_r
            width = self.side_l if sgn < 0 else self.side_r
            for _ in range(int(rng.integers(1, 6))):
                x = sgn * (edge + u(0.3, width - 0.3))
                z = u(max(4.0, 1.6 * abs(x)), 42.0)
                self._add_person(rng, x, z)
        if self.crosswalk is not None:
            for _ in range(int(rng.integers(0, 4))):
                self._add_person(rng, u(-self.road_l, self.road_r),
                                 self.crosswalk + u(0.3, 2.7))
        # Trees, street lamps and sign posts.
        for sgn in (-1, 1):
            edge = self.road_l if sgn < 0 else self.road_r
            grass = self.grass_l if sgn < 0 else self.grass_r
            side = self.side_l if sgn < 0 else self.side_r
            if rng.random() < 0.6:
                x = sgn * (edge + side + grass / 2) if grass else sgn * (edge + 0.8)
                z = u(0.0, 12.0)
                while z < 70.0:
                    if z > 3.0:
                        self._add_tree(rng, x + u(-0.3, 0.3), z)
                    z += u(6.0, 14.0)
            if rng.random() < 0.75:
                z, arm = u(3.0, 20.0), u(1.0, 2.2)
                while z < 75.0:
                    self._add_lamp(rng, sgn * (edge + 0.45), z, -sgn * arm)
                    z += u(18.0, 34.0)
        for _ in range(int(rng.integers(1, 4))):
            sgn = -1 if rng.random() < 0.5 else 1
            edge = self.road_l if sgn < 0 else self.road_r
            self._add_sign(rng, sgn * (edge + u(0.3, 0.9)), u(5.0, 45.0))

    def _add_car(self, rng: _Rand, xc: float, z0: float, length: float,
                 front: bool) -> None:
        u = rng.uniform
        half = u(0.84, 0.95)
        if not self._visible(xc - half, xc + half, 1.5, z0 + length):
            return
        # Contact shadow on the ground.
        self.shadows.append(np.array([self._px(xc - half - 0.15, 0, z0 - 0.2),
                                      self._px(xc + half + 0.15, 0, z0 - 0.2),
                                      self._px(xc + half + 0.15, 0, z0 + length),
                                      self._px(xc - half - 0.15, 0, z0 + length)]))
        body = _CARS[rng.weighted(_CAR_WEIGHTS)][0]
        body = body if sum(body) else _hsv(u(0, 1), u(0.4, 0.9), u(0.3, 0.9))
        body = _jitter(rng, body, 0.1)
        glass = _jitter(rng, (38, 46, 58), 0.2)
        tyre = (24, 24, 26)
        light = (235, 235, 210) if front else (200, 20, 24)
        params = (xc, z0, length, half, u(0.9, 1.02), u(1.35, 1.55), u(0.8, 1.1),
                  u(0.9, 1.3), body, glass, tyre, light)
        self.objects.append((z0, lambda: self._draw_car(*params)))

    def _draw_car(self, xc: float, z0: float, length: float, half: float, belt: float,
                  roof: float, c_back: float, c_front: float, body: _Rgb, glass: _Rgb,
                  tyre: _Rgb, light: _Rgb) -> None:
        obj = self._new_obj(CAR)
        x0, x1, z1 = xc - half, xc + half, z0 + length
        y0 = 0.3
        cx0, cx1 = x0 + 0.12, x1 - 0.12
        cz0, cz1 = z0 + c_back, z1 - c_front
        p_body = self._prim(CAR, obj, body)
        p_side = self._prim(CAR, obj, _scale(body, 0.78))
        if self.f / z0 < 5.0:  # under ~7 px tall: a silhouette with dark glass is enough
            xs = x1 if x1 < 0 else (x0 if x0 > 0 else None)
            if xs is not None:
                self._fill3([(xs, 0.1, z0), (xs, 0.1, z1), (xs, belt, z1), (xs, belt, z0)],
                            p_side)
            self._fill3([(cx0, belt, cz0), (cx1, belt, cz0), (cx1, roof, cz0 + 0.25),
                         (cx0, roof, cz0 + 0.25)], self._prim(CAR, obj, glass))
            self._fill3([(x0, 0.05, z0), (x1, 0.05, z0), (x1, belt, z0), (x0, belt, z0)], p_body)
            return
        p_top = self._prim(CAR, obj, _scale(body, 1.12))
        p_glass = self._prim(CAR, obj, glass)
        p_glass_s = self._prim(CAR, obj, _scale(glass, 0.8))
        p_tyre = self._prim(CAR, obj, tyre)
        p_dark = self._prim(CAR, obj, (40, 40, 44))
        p_light = self._prim(CAR, obj, light)
        p_plate = self._prim(CAR, obj, (214, 214, 206))
        # Rear/front wheels seen under the near face.
        for wx0, wx1 in ((x0 + 0.06, x0 + 0.32), (x1 - 0.32, x1 - 0.06)):
            self._fill3([(wx0, 0, z0 + 0.75), (wx1, 0, z0 + 0.75), (wx1, 0.5, z0 + 0.75),
                         (wx0, 0.5, z0 + 0.75)], p_tyre)
        # Side face towards the camera, with its wheels.
        xs = x1 if x1 < 0 else (x0 if x0 > 0 else None)
        if xs is not None:
            self._fill3([(xs, y0, z0), (xs, y0, z1), (xs, belt, z1), (xs, belt, z0)], p_side)
            cxs = cx1 if xs == x1 else cx0
            self._fill3([(cxs, belt, cz0), (cxs, belt, cz1), (cxs, roof, cz1 - 0.3),
                         (cxs, roof, cz0 + 0.25)], p_glass_s)
            for zc in (z0 + 0.85, z1 - 0.85):
                ring = [(xs, 0.33 + 0.33 * sa, zc + 0.33 * ca) for ca, sa in _RING10]
                self._fill3(ring, p_tyre)
        # Top of the body (bonnet/boot) and the cabin.
        if belt < self.hc:
            self._fill3([(x0, belt, z0), (x1, belt, z0), (x1, belt, z1), (x0, belt, z1)],
                        p_top)
        if roof < self.hc:
            self._fill3([(cx0, roof, cz0 + 0.25), (cx1, roof, cz0 + 0.25),
                         (cx1, roof, cz1 - 0.3), (cx0, roof, cz1 - 0.3)], p_top)
        self._fill3([(cx0, belt, cz0), (cx1, belt, cz0), (cx1, roof, cz0 + 0.25),
                     (cx0, roof, cz0 + 0.25)], p_body)
        self._fill3([(cx0 + 0.08, belt + 0.04, cz0), (cx1 - 0.08, belt + 0.04, cz0),
                     (cx1 - 0.1, roof - 0.06, cz0 + 0.22), (cx0 + 0.1, roof - 0.06, cz0 + 0.22)],
                    p_glass)
        # Near face: body, bumper, lights, plate.
        self._fill3([(x0, y0, z0), (x1, y0, z0), (x1, belt, z0), (x0, belt, z0)], p_body)
        self._fill3([(x0, y0, z0), (x1, y0, z0), (x1, y0 + 0.14, z0), (x0, y0 + 0.14, z0)],
                    p_dark)
        for lx0, lx1 in ((x0 + 0.06, x0 + 0.36), (x1 - 0.36, x1 - 0.06)):
            self._fill3([(lx0, belt - 0.26, z0), (lx1, belt - 0.26, z0), (lx1, belt - 0.1, z0),
                         (lx0, belt - 0.1, z0)], p_light)
        self._fill3([(xc - 0.26, y0 + 0.18, z0), (xc + 0.26, y0 + 0.18, z0),
                     (xc + 0.26, y0 + 0.3, z0), (xc - 0.26, y0 + 0.3, z0)], p_plate)

    def _add_person(self, rng: _Rand, x: float, z: float) -> None:
        u = rng.uniform
        hgt = u(1.55, 1.95) if rng.random() < 0.88 else u(1.05, 1.4)
        if not self._visible(x - 0.4, x + 0.4, hgt, z):
            return
        self.shadows.append(np.array([self._px(x + dx, 0, z + dz) for dx, dz in
                                      ((-0.35, -0.2), (0.35, -0.2), (0.45, 0.5), (-0.25, 0.5))]))
        skin = _jitter(rng, _choice(rng, _SKIN), 0.06)
        hair = _jitter(rng, _choice(rng, _HAIR), 0.1)
        shirt = _hsv(u(0, 1), u(0.2, 0.9), u(0.35, 0.95))
        trousers = _jitter(rng, _choice(rng, _TROUSERS), 0.12) if rng.random() < 0.8 \
            else _hsv(u(0, 1), u(0.2, 0.7), u(0.2, 0.7))
        shoes = (30, 26, 26) if rng.random() < 0.7 else (210, 210, 205)
        pose = (u(-0.06, 0.06), u(-0.06, 0.06), rng.random() < 0.3, rng.random() < 0.35,
                rng.random() < 0.15, rng.random() < 0.2)
        params = (x, z, hgt, skin, hair, shirt, trousers, shoes, pose)
        self.objects.append((z, lambda: self._draw_person(*params)))

    def _draw_person(self, x: float, z: float, hgt: float, skin: _Rgb, hair: _Rgb, shirt: _Rgb,
                     trousers: _Rgb, shoes: _Rgb, pose: tuple) -> None:
        stride, swing, short_sleeves, back_view, dress, bag = pose
        obj = self._new_obj(PERSON)
        bx, by = self._px(x, 0.0, z)
        s = self.f / z * hgt  # pixels per body height

        def p(dx: float, hy: float) -> tuple[float, float]:
            return bx + dx * s, by - hy * s

        def limb(a: tuple[float, float], b: tuple[float, float], r: float, pid: int) -> None:
            (ax, ay), (bx_, by_) = p(*a), p(*b)
            nx, ny = by_ - ay, ax - bx_
            n = math.hypot(nx, ny) or 1.0
            rr = max(r * s, 0.5)
            nx, ny = nx / n * rr, ny / n * rr
            self._fill([(ax + nx, ay + ny), (bx_ + nx, by_ + ny), (bx_ - nx, by_ - ny),
                        (ax - nx, ay - ny)], pid)

        p_skin = self._prim(PERSON, obj, skin)
        p_hair = self._prim(PERSON, obj, hair)
        p_shirt = self._prim(PERSON, obj, shirt)
        p_sleeve = self._prim(PERSON, obj, _scale(shirt, 0.85))
        p_trousers = self._prim(PERSON, obj, trousers)
        p_shoes = self._prim(PERSON, obj, shoes)
        leg = p_skin if dress else p_trousers
        if s < 10.0:  # a few pixels tall: legs, body, head
            self._fill([p(-0.08 - stride, 0.0), p(0.08 + stride, 0.0), p(0.09, 0.5),
                        p(-0.09, 0.5)], leg)
            self._fill([p(-0.12, 0.84), p(0.12, 0.84), p(0.1, 0.48), p(-0.1, 0.48)], p_shirt)
            self._fill([p(-0.055, 1.0), p(0.055, 1.0), p(0.055, 0.85), p(-0.055, 0.85)],
                       p_hair if back_view else p_skin)
            return
        for sx in (-1, 1):
            limb((sx * 0.045, 0.5), (sx * 0.05 + sx * stride, 0.03), 0.034, leg)
            limb((sx * 0.05 + sx * stride, 0.045), (sx * 0.05 + sx * stride + 0.02, 0.0),
                 0.03, p_shoes)
        self._fill([p(-0.12, 0.82), p(0.12, 0.82), p(0.09, 0.48), p(-0.09, 0.48)], p_shirt)
        if dress:
            self._fill([p(-0.09, 0.5), p(0.09, 0.5), p(0.13, 0.3), p(-0.13, 0.3)], p_shirt)
        elif not bag:
            self._fill([p(-0.092, 0.53), p(0.092, 0.53), p(0.09, 0.47), p(-0.09, 0.47)],
                       p_trousers)
        for sx, sw in ((-1, swing), (1, -swing)):
            elbow = (sx * 0.14 + sw * 0.5, 0.63)
            limb((sx * 0.115, 0.8), elbow, 0.03, p_sleeve)
            limb(elbow, (sx * 0.14 + sw, 0.45), 0.026, p_skin if short_sleeves else p_sleeve)
        if bag:
            self._fill([p(0.1, 0.66), p(0.2, 0.66), p(0.2, 0.5), p(0.1, 0.5)],
                       self._prim(PERSON, obj, (52, 40, 34)))
        limb((0.0, 0.82), (0.0, 0.87), 0.03, p_skin)
        cx, cy = p(0.0, 0.925)
        ry, rx = 0.068 * s, 0.056 * s

        def ellipse(cx: float, cy: float, rx: float, ry: float) -> list[tuple[float, float]]:
            rx, ry = max(rx, 0.5), max(ry, 0.5)
            return [(cx + rx * ca, cy + ry * sa) for ca, sa in _RING12]

        self._fill(ellipse(cx, cy - 0.08 * ry, rx * 1.06, ry * 1.02), p_hair)
        if not back_view:
            self._fill(ellipse(cx, cy + 0.2 * ry, rx * 0.92, ry * 0.82), p_skin)

    def _add_tree(self, rng: _Rand, x: float, z: float) -> None:
        u = rng.uniform
        trunk_h, r = u(1.8, 3.2), u(1.2, 2.6)
        if not self._visible(x - r, x + r, trunk_h + 2 * r, z):
            return
        blobs = [(u(-0.7, 0.7) * r, trunk_h + r * u(0.5, 1.4), r * u(0.45, 0.8))
                 for _ in range(int(rng.integers(5, 9)))]
        bark = _jitter(rng, (84, 66, 50), 0.15)
        self.objects.append((z, lambda: self._draw_tree(x, z, trunk_h, blobs, bark)))

    def _draw_tree(self, x: float, z: float, trunk_h: float,
                   blobs: list[tuple[float, float, float]], bark: _Rgb) -> None:
        s = self.f / z
        hw = max(0.14, 0.5 / s)
        self._fill3([(x - hw, 0, z), (x + hw, 0, z), (x + hw * 0.8, trunk_h + 0.8, z),
                     (x - hw * 0.8, trunk_h + 0.8, z)], self._prim(VEGETATION, 0, bark))
        for dx, y, r in blobs:
            cx, cy = self._px(x + dx, y, z)
            cv2.circle(self.prim, (round((cx - 0.5) * 16), round((cy - 0.5) * 16)),
                       max(round(r * s * 16), 8), VEGETATION, -1, cv2.LINE_8, 4)

    def _pole(self, x: float, z: float, top: float, rgb: _Rgb, radius: float = 0.09) -> None:
        hw = max(radius, 0.5 * z / self.f)
        lit = self._prim(POLE, 0, _scale(rgb, 1.12))
        dark = self._prim(POLE, 0, _scale(rgb, 0.82))
        self._fill3([(x - hw, 0, z), (x, 0, z), (x, top, z), (x - hw, top, z)],
                    lit if self.sun < 0 else dark)
        self._fill3([(x, 0, z), (x + hw, 0, z), (x + hw, top, z), (x, top, z)],
                    dark if self.sun < 0 else lit)

    def _add_lamp(self, rng: _Rand, x: float, z: float, arm: float) -> None:
        top = rng.uniform(6.0, 9.0)
        if not self._visible(min(x, x + arm) - 0.3, max(x, x + arm) + 0.3, top + 0.3, z):
            return
        rgb = _jitter(rng, _choice(rng, [(140, 146, 154), (126, 132, 140), (152, 154, 158)]),
                      0.08)

        def draw() -> None:
            self._pole(x, z, top, rgb, 0.1)
            hw = max(0.06, 0.5 * z / self.f)
            pid = self._prim(POLE, 0, rgb)
            self._fill3([(x, top - hw, z), (x + arm, top + 0.15 - hw, z),
                         (x + arm, top + 0.15 + hw, z), (x, top + hw, z)], pid)
            head = self._prim(POLE, 0, _scale(rgb, 0.7))
            self._fill3([(x + arm - 0.35, top + 0.02, z), (x + arm + 0.2, top + 0.02, z),
                         (x + arm + 0.2, top + 0.22, z), (x + arm - 0.35, top + 0.22, z)],
                        head)

        self.objects.append((z, draw))

    def _add_sign(self, rng: _Rand, x: float, z: float) -> None:
        u = rng.uniform
        top, size = u(2.2, 2.9), u(0.55, 0.85)
        if not self._visible(x - size, x + size, top + size, z):
            return
        kind = int(rng.integers(5))
        rgb = _jitter(rng, (138, 142, 150), 0.08)

        def draw() -> None:
            self._pole(x, z, top, rgb, 0.05)
            s = self.f / z
            cx, cy = self._px(x, top + size / 2, z)
            r = max(size / 2 * s, 1.0)
            red, white = (196, 28, 32), (228, 228, 222)
            blue, yellow = (28, 76, 170), (236, 186, 30)

            def shape(n: int, rr: float, rot: float, rgb_: _Rgb, dy: float = 0.0) -> None:
                self._fill([(cx + rr * math.cos(rot + 2 * math.pi * i / n),
                             cy + dy + rr * math.sin(rot + 2 * math.pi * i / n))
                            for i in range(n)], self._prim(SIGN, 0, rgb_))

            if kind == 0:  # blue information panel
                shape(4, r * 1.2, math.pi / 4, blue)
                shape(4, r * 0.5, math.pi / 4, white)
            elif kind == 1:  # round prohibition sign
                shape(14, r, 0.0, red)
                shape(14, r * 0.7, 0.0, white)
            elif kind == 2:  # warning triangle
                shape(3, r * 1.15, -math.pi / 2, red, r * 0.2)
                shape(3, r * 0.7, -math.pi / 2, white, r * 0.2)
            elif kind == 3:  # priority road diamond
                shape(4, r, 0.0, white)
                shape(4, r * 0.72, 0.0, yellow)
            else:  # round blue mandatory sign
                shape(14, r, 0.0, blue)
                shape(4, r * 0.4, 0.0, white)

        self.objects.append((z, draw))

    def draw_objects(self) -> None:
        """Draw all objects back to front."""
        for _, draw in sorted(self.objects, key=lambda o: -o[0]):
            draw()


# ----------------------------------------------------------------------------- textures
def _texture(sc: _Scene, prim: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour every pixel: flat colours for drawn parts, textures for stuff classes."""
    h, w = prim.shape
    flat = prim.ravel()
    table = np.array(sc.prim_rgb, np.float32)
    photo = table[flat]
    n_hi = rng.random(h * w, dtype=np.float32) * 2.0 - 1.0
    sc.sensor_noise = (np.roll(n_hi, 7) * 4.0)[:, None]
    n_lo = _smooth_noise(rng, h, w, 7, 13)
    n_mid = _smooth_noise(rng, h, w, 17, 33)
    n_leaf = _smooth_noise(rng, h, w, max(4, h // 5), max(4, w // 5))
    f, hc, yh, xv = sc.f, sc.hc, sc.yh, sc.xv

    def coords(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = idx // w
        return y, idx - y * w

    for cls in _TEXTURED:
        idx = np.flatnonzero(flat == cls)
        if idx.size == 0:
            continue
        y, x = coords(idx)
        yc = y.astype(np.float32) + 0.5
        hi, lo, mid = n_hi[idx], n_lo[idx], n_mid[idx]
        if cls == SKY:
            t = np.clip(yc / max(yh, 1.0), 0.0, 1.0)[:, None]
            col = np.array(sc.sky_top, np.float32) * (1 - t) + np.array(sc.sky_hor,
                                                                         np.float32) * t
            cloud = np.clip((lo + 0.6 * mid - 1.0 + 1.6 * sc.cloud_cover) * 2.5, 0, 1)
            cloud = (cloud * (0.9 + 0.1 * hi))[:, None]
            shade = (0.82 + 0.18 * np.clip(mid + 0.5, 0, 1))[:, None]
            col = col * (1 - cloud) + np.float32(238) * shade * cloud
        elif cls in (ROAD, SIDEWALK, TERRAIN):
            dy = np.maximum(yc - yh, 1e-3)
            zg = f * hc / dy
            xg = (x.astype(np.float32) + 0.5 - xv) * (hc / dy)
            s = f / zg  # pixels per metre here
            if cls == ROAD:
                col = np.array(sc.asphalt, np.float32) * (1 + 0.08 * lo + 0.07 * hi)[:, None]
                col = _road_marks(sc, col, xg, zg, s)
            elif cls == SIDEWALK:
                col = np.array(sc.paving, np.float32) * (1 + 0.05 * lo + 0.05 * hi)[:, None]
                fade = np.clip((sc.tile * s - 3.0) / 4.0, 0, 1)
                tu, tz = xg / sc.tile, zg / (sc.tile * 1.5)
                seam = (((tu - np.floor(tu)) < 0.09) | ((tz - np.floor(tz)) < 0.06))
                col *= (1 - 0.18 * seam * fade)[:, None]
                curb = (np.abs(xg + sc.road_l) < 0.22) | (np.abs(xg - sc.road_r) < 0.22)
                col[curb] = col[curb] * 1.18 + 10
            else:
                col = np.array(sc.grass, np.float32) * (
                    1 + 0.1 * lo + 0.12 * mid + 0.12 * hi)[:, None]
            if sc.sun_shadow is not None:
                shade = (xg - sc.sun_shadow) * sc.sun > 0
                col[shade] *= 0.68
        elif cls == VEGETATION:
            leaf = np.clip(n_leaf[idx] * 0.9 + 0.35 * hi + 0.25, -1, 1)
            col = np.array(sc.leaf, np.float32) * (0.85 + 0.5 * leaf + 0.1 * lo)[:, None]
        else:
            col = _facade(sc, y, x, yc, lo, hi)
        photo[idx] = col
    return photo


def _road_marks(sc: _Scene, col: np.ndarray, xg: np.ndarray, zg: np.ndarray,
                s: np.ndarray) -> np.ndarray:
    """Lane lines, edge lines and a zebra crossing on the asphalt."""
    half = np.maximum(0.07, 0.5 / s)  # a line is at least one pixel wide
    white = np.zeros(xg.shape, bool)
    lane0 = -sc.road_l + sc.park_l
    dash = (zg / 9.0 - np.floor(zg / 9.0)) < 0.42
    centre = sc.lanes // 2 if sc.two_way else -1
    yellow = np.zeros(xg.shape, bool)
    for i in range(1, sc.lanes):
        line = np.abs(xg - (lane0 + i * sc.lane_w)) < half
        if i == centre and sc.yellow_center:
            yellow |= line
        elif i == centre:
            white |= line
        else:
            white |= line & dash
    for edge in (lane0 + 0.25, lane0 + sc.lanes * sc.lane_w - 0.25):
        white |= np.abs(xg - edge) < half
    if sc.crosswalk is not None:
        band = (zg > sc.crosswalk) & (zg < sc.crosswalk + 3.0)
        white |= band & ((xg / 1.0 - np.floor(xg / 1.0)) < 0.5) & (s > 1.5)
    col[white] = col[white] * 0.3 + np.float32(168)
    col[yellow] = col[yellow] * 0.3 + np.array([172, 140, 40], np.float32)
    return col


def _facade_columns(sc: _Scene) -> np.ndarray:
    """Per-column facade records: rows ``0..W-1`` side facades, ``W..2W-1`` the far wall.

    Everything about a building pixel that depends only on its column (depth, building,
    horizontal window position, anti-aliasing fade, colours) is computed once per column.
    """
    w, f = sc.w, sc.f
    b = sc.bld
    tab = np.array([(*d["wall"], *d["glass"], d["ws"], d["ww"], d["fh"], d["wh0"], d["wh1"],
                     d["gf"], d["top"]) for d in b] or [(0.0,) * 13], np.float32)
    xc = np.arange(w, dtype=np.float32) + 0.5
    zs = np.concatenate([np.minimum(sc.col_zs, 1e6), np.full(w, sc.z_far, np.float32)])
    seg = np.maximum(np.concatenate([sc.col_sid, sc.col_fid]), 0)
    uu = np.concatenate([sc.col_zs, (xc - sc.xv) * sc.z_far / f])
    du = np.concatenate([sc.col_du, np.full(w, f / sc.z_far, np.float32)])
    t = tab[seg]
    ws, fh = t[:, 6], t[:, 8]
    fu = np.where(np.isfinite(uu), uu, 0) / ws
    coli = np.floor(fu)
    fu -= coli
    win_u = np.abs(fu - 0.5) < t[:, 7] / 2
    shop_u = np.abs(fu - 0.5) < 0.42
    fade = np.clip((np.minimum(ws * du, fh * f / zs) - 2.0) / 3.0, 0, 1)
    left = np.concatenate([xc < sc.xv, np.zeros(w, bool)])
    lit = np.concatenate([np.where(left[:w] == (sc.sun < 0), 1.1, 0.86), np.full(w, 0.95)])
    area = t[:, 7] * (t[:, 10] - t[:, 9])
    return np.column_stack([zs, seg, coli, win_u, shop_u, fade, lit, area, t]).astype(
        np.float32)


def _facade(sc: _Scene, y: np.ndarray, x: np.ndarray, yc: np.ndarray, lo: np.ndarray,
            hi: np.ndarray) -> np.ndarray:
    """Building texture: wall colour, window grid, shop floor and cornice per building."""
    cols = _facade_columns(sc)
    side = yc >= sc.col_s_top[x]
    r = cols[np.where(side, x, x + sc.w)]
    zs, gf, fh, top = r[:, 0], r[:, 19], r[:, 16], r[:, 20]
    vv = sc.hc - (yc - sc.yh) * (zs / sc.f)
    fv = (vv - gf) / fh
    rowi = np.floor(fv)
    fv -= rowi
    upper = vv >= gf
    win = np.where(upper,
                   (r[:, 3] > 0) & (fv > r[:, 17]) & (fv < r[:, 18]) & (vv < top - 0.8),
                   (r[:, 4] > 0) & (vv > 0.35) & (vv < gf - 0.7))
    tone = _hash01(r[:, 2], rowi, r[:, 1])
    k = np.where(upper, np.where(vv > top - 0.4, 0.72, 1.0), 0.85) * (1 + 0.05 * (lo + hi))
    wall = r[:, 8:11] * k[:, None]
    glass = r[:, 11:14] * (0.65 + 0.9 * tone)[:, None]
    area = r[:, 7:8]
    blur = wall * (1 - area) + r[:, 11:14] * area
    fade = r[:, 5:6]
    out = np.where(win[:, None], glass, wall)
    return (blur + fade * (out - blur)) * r[:, 6:7]


# ------------------------------------------------------------------------------- render
def render(seed: int, split: str, index: int, size: tuple[int, int]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one ToyCity sample.

    Args:
        seed: Dataset seed.
        split: Split name; each split is its own seed stream.
        index: Sample index.
        size: ``(H, W)`` of the output.

    Returns:
        ``(semantic, instance, photo)``: ``H×W`` uint8 class ids, ``H×W`` int32
        Cityscapes-style instance ids (``class*1000 + k`` on thing pixels, 0 elsewhere) and
        the ``H×W×3`` uint8 RGB photo.
    """
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f"ToyCity size must be at least 8x8, got {h}x{w}")
    rng = _Rand(_seed_int("toycity", seed, split, index))
    pix_rng = np.random.default_rng(_seed_int("toycity-pixels", seed, split, index, h, w))
    sc = _Scene(rng, h, w)
    sc.layout()
    if sc.shadows:
        shadow = np.zeros((h, w), np.uint8)
        for pts in sc.shadows:
            cv2.fillPoly(shadow, [np.rint((pts - 0.5) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    sc.draw_objects()
    prim = sc.prim
    semantic = np.array(sc.prim_cls, np.uint8)[prim]
    # Instance ids: class*1000 + k, k counting the visible instances of a class.
    objmap = np.array(sc.prim_obj, np.int32)[prim]
    present = np.flatnonzero(np.bincount(objmap.ravel(), minlength=len(sc.obj_cls)))
    lut = np.zeros(len(sc.obj_cls), np.int32)
    counts = [0] * _NUM_CLASSES
    for o in present[present > 0]:
        c = sc.obj_cls[o]
        lut[o] = c * 1000 + counts[c]
        counts[c] += 1
    instance = lut[objmap]
    # Photo.
    photo = _texture(sc, prim, pix_rng)
    if sc.shadows:
        ground = (semantic == ROAD) | (semantic == SIDEWALK) | (semantic == TERRAIN)
        photo[(ground & (shadow > 0)).ravel()] *= 0.5
    photo *= _vignette(h, w) * (sc.gain * sc.temp)
    photo += sc.sensor_noise
    photo = np.clip(photo, 0, 255, out=photo).astype(np.uint8).reshape(h, w, 3)
    return semantic, instance, photo


class ToyCity:
    """The procedural ToyCity dataset: paired (label map, photo) street scenes.

    Args:
        size: ``(H, W)`` of every sample; any size from 8×8 up works, and the layout
            scales with it (the horizon, the perspective and all object sizes are relative).
        seed: Dataset seed.
        split: Split name; ``train`` and ``val`` (or any other name) draw different scenes.

    Example:
        >>> lm, photo = ToyCity((64, 128)).sample(0)
        >>> lm.semantic.shape, photo.shape
        ((64, 128), (64, 128, 3))
    """

    def __init__(self, size: tuple[int, int] = (128, 256), seed: int = 0,
                 split: str = "train") -> None:
        self.size = (int(size[0]), int(size[1]))
        self.seed = int(seed)
        self.split = str(split)
        self.vocabulary = toycity_vocabulary()

    def sample_id(self, index: int) -> str:
        """The sample id of ``index``: ``toycity_{split}_{index:06d}``."""
        return f"toycity_{self.split}_{int(index):06d}"

    def sample(self, index: int) -> tuple[LabelMap, np.ndarray]:
        """Render sample ``index``.

        Returns:
            ``(label_map, photo)``: the :class:`~sisgen.labelmap.LabelMap` (uint8 semantic,
            int32 instance, meta with ``id``, ``source``, ``size``, ``seed``) and the
            ``H×W×3`` uint8 RGB photo, whose class regions are exactly the label's.
        """
        semantic, instance, photo = render(self.seed, self.split, int(index), self.size)
        meta = {"id": self.sample_id(index), "source": "toycity", "size": self.size,
                "split": self.split, "seed": self.seed, "index": int(index)}
        return LabelMap(semantic, instance, meta), photo
