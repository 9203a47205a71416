"""The street layout of a ToyCity scene: camera, road cross-section, facades, light.

A pinhole camera at height ``hc`` looks down a straight street. The ground plane holds the
road (2-4 lanes, optional parking strips), a sidewalk on each side and optionally a grass
strip. Two facade planes run parallel to the road and recede to the vanishing point; they
are split into blocks of varied height (buildings, or rows of trees), and a far wall across
the street closes the view with a skyline along the horizon. :class:`Street` draws all of
that from the scene's random stream and rasterises it (ground, facades, far wall, sky) into
the first primitive map; the objects standing on the ground come after
(:mod:`.objects`).

World coordinates are metres: ``X`` grows to the right (the camera is at ``X = 0``), ``Y``
up from the ground, ``Z`` the depth along the street.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import BUILDING, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION
from .palette import PAVING, WALLS, Rgb, hsv, jitter
from .rand import Rand


@dataclass(frozen=True)
class Building:
    """The look of one building block (lengths in metres, fractions of a window cell).

    Attributes:
        wall: Wall colour.
        glass: Window glass colour.
        window_spacing: Distance between window centres along the facade.
        window_width: Window width, as a fraction of ``window_spacing``.
        floor_height: Height of one upper floor.
        window_bottom: Sill height, as a fraction of ``floor_height``.
        window_top: Lintel height, as a fraction of ``floor_height``.
        ground_floor: Height of the shop floor (its windows are shop fronts).
        height: Height of the block (the cornice darkens its top 0.4 m).
    """

    wall: Rgb
    glass: Rgb
    window_spacing: float
    window_width: float
    floor_height: float
    window_bottom: float
    window_top: float
    ground_floor: float
    height: float

    @staticmethod
    def draw(rng: Rand, height: float) -> Building:
        """A random building of ``height`` (the draw order is part of the seed contract)."""
        u = rng.uniform
        return Building(
            wall=jitter(rng, rng.choice(WALLS), 0.12),
            glass=jitter(rng, (52, 64, 82), 0.2),
            window_spacing=u(1.9, 3.4), window_width=u(0.35, 0.65),
            floor_height=u(2.8, 3.6), window_bottom=u(0.22, 0.38),
            window_top=u(0.68, 0.85), ground_floor=u(3.2, 4.6),
            height=height,
        )

    def row(self) -> tuple[float, ...]:
        """The 13 numbers of the facade texture table (see :mod:`.painting`)."""
        return (*self.wall, *self.glass, self.window_spacing, self.window_width,
                self.floor_height, self.window_bottom, self.window_top, self.ground_floor,
                self.height)


@dataclass(frozen=True)
class Facade:
    """Blocks along one facade (or the far wall), as arrays over the blocks.

    Attributes:
        ends: Where each block ends along the facade (``Z`` on the sides, ``X`` on the far
            wall), ascending.
        building: Index into :attr:`Street.buildings`, or -1 for a row of trees.
        height: Block height (the mean canopy height for trees).
        amp: Canopy wave amplitude (0 for buildings).
        freq: Canopy wave frequency.
        phase: Canopy wave phase.
    """

    ends: np.ndarray
    building: np.ndarray
    height: np.ndarray
    amp: np.ndarray
    freq: np.ndarray
    phase: np.ndarray

    @staticmethod
    def draw(rng: Rand, buildings: list[Building], length: float, start: float = 0.0,
             far: bool = False) -> Facade:
        """Blocks from ``start`` to past ``start + length``; new buildings join ``buildings``."""
        u = rng.uniform
        ends, ids, heights, amp, freq, phase = [], [], [], [], [], []
        pos = start
        while pos < start + length:
            pos += u(6.0, 18.0) if far else u(7.0, 24.0)
            ends.append(pos)
            if rng.random() < (0.8 if far else 0.75):
                hgt = u(8.0, 38.0) if far else u(6.0, 26.0)
                ids.append(len(buildings))
                heights.append(hgt)
                amp.append(0.0)
                buildings.append(Building.draw(rng, hgt))
            else:
                ids.append(-1)
                heights.append(u(5.0, 12.0) if far else u(3.5, 9.0))
                amp.append(u(0.6, 1.8))
            freq.append(u(0.25, 0.6))
            phase.append(u(0.0, 6.3))
        return Facade(np.array(ends, np.float32), np.array(ids, np.int32),
                      np.array(heights, np.float32), np.array(amp, np.float32),
                      np.array(freq, np.float32), np.array(phase, np.float32))

    def columns(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per image column: class, building index and top height of the block at ``pos``."""
        k = np.minimum(np.searchsorted(self.ends, pos), len(self.ends) - 1)
        ids = self.building[k]
        hgt = self.height[k] + self.amp[k] * (
            np.sin(pos * self.freq[k] + self.phase[k])
            + 0.5 * np.sin(pos * 2.3 * self.freq[k] + 1.7 * self.phase[k]))
        cls = np.where(ids >= 0, BUILDING, VEGETATION).astype(np.uint16)
        return cls, ids, hgt.astype(np.float32)


@dataclass(frozen=True)
class FacadeColumns:
    """What the facade texture needs per image column, from :meth:`Street.rasterise`.

    Attributes:
        side_top: Image row where the side facade's top edge is (``inf`` where none).
        side_depth: Depth ``Z`` of the side facade seen in the column (``inf`` at the
            vanishing point).
        side_building: Side facade block's building index (-1 = trees).
        far_building: Far wall block's building index (-1 = trees).
        side_du: Pixels per metre along the side facade (0 beyond the far wall).
    """

    side_top: np.ndarray
    side_depth: np.ndarray
    side_building: np.ndarray
    far_building: np.ndarray
    side_du: np.ndarray


class Street:
    """The layout of one scene, drawn from ``rng`` for an ``h×w`` image.

    Every size follows from the camera, so the layout scales with the resolution; the
    draws do not depend on it.

    Attributes:
        h: Image height in pixels.
        w: Image width in pixels.
        f: Focal length in pixels.
        hc: Camera height in metres.
        yh: Horizon row.
        xv: Vanishing point column.
        lanes: Driving lanes.
        lane_w: Lane width.
        park_l: Width of the parking strip on the left (0 = none); ``park_r`` the right.
        road_l: Extent of the road left of the camera; ``road_r`` right of it.
        two_way: The lanes left of the centre line carry oncoming traffic.
        side_l: Left sidewalk width; ``side_r`` the right one.
        grass_l: Left grass strip width (0 = none); ``grass_r`` the right one.
        xb_l: Distance of the left facade from the camera; ``xb_r`` the right one.
        z_far: Depth of the far wall.
        crosswalk: Depth where a 3 m zebra crossing starts, or ``None``.
        buildings: Every building (indexed by the facades' ``building``).
        left: The left facade; ``right`` the right one, ``far`` the far wall.
        gain: Exposure gain.
        temp: RGB gains of the colour temperature.
        sun: The side (sign of ``X``) whose facade is lit.
        sun_shadow: ``X`` where a cast shadow on the ground begins, or ``None``.
        sky_top: Sky colour at the top; ``sky_hor`` at the horizon.
        cloud_cover: Amount of cloud (more when ``overcast``).
        asphalt: Road colour; ``yellow_center``: a yellow centre line.
        paving: Sidewalk colour; ``tile`` the paving tile size in metres.
        leaf: Foliage colour; ``grass`` the grass strips' colour.
    """

    def __init__(self, rng: Rand, h: int, w: int) -> None:
        self.h, self.w = h, w
        u = rng.uniform
        # Camera.
        self.f = w * u(0.85, 1.15)
        self.hc = u(1.3, 1.8)
        self.yh = h * u(0.36, 0.48)
        self.xv = w * u(0.4, 0.6)
        # Road cross-section.
        self.lanes = int(rng.choice([2, 2, 3, 4]))
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
        # Facades (one building list shared by both sides and the far wall).
        self.buildings: list[Building] = []
        self.left = Facade.draw(rng, self.buildings, self.z_far)
        self.right = Facade.draw(rng, self.buildings, self.z_far)
        xmin = -self.xv * self.z_far / self.f - 5.0
        xmax = (w - self.xv) * self.z_far / self.f + 5.0
        self.far = Facade.draw(rng, self.buildings, xmax - xmin, start=xmin, far=True)
        self._draw_light(rng)
        self._draw_materials(rng)

    def _draw_light(self, rng: Rand) -> None:
        u = rng.uniform
        self.gain = u(0.8, 1.15)
        t = u(-1.0, 1.0)
        self.temp = np.array([1 + 0.09 * t, 1 + 0.01 * t, 1 - 0.09 * t], np.float32)
        self.sun = 1 if rng.random() < 0.5 else -1  # the facade on this side is lit
        self.sun_shadow = u(-self.road_l, self.road_r) if rng.random() < 0.5 else None

    def _draw_materials(self, rng: Rand) -> None:
        u = rng.uniform
        self.overcast = rng.random() < 0.2
        if self.overcast:
            self.sky_top = jitter(rng, (168, 178, 190), 0.08)
            self.sky_hor = jitter(rng, (205, 210, 214), 0.05)
        else:
            self.sky_top = hsv(u(0.56, 0.62), u(0.45, 0.7), u(0.72, 0.9))
            self.sky_hor = hsv(u(0.54, 0.6), u(0.12, 0.3), u(0.88, 0.98))
        self.cloud_cover = u(0.0, 0.5) if not self.overcast else u(0.4, 0.8)
        g = u(62, 96)
        self.asphalt = (g, g, g * u(1.0, 1.06))
        self.yellow_center = self.two_way and rng.random() < 0.3
        self.paving = jitter(rng, rng.choice(PAVING), 0.06)
        self.tile = u(0.35, 0.8)
        self.leaf = hsv(u(0.22, 0.33), u(0.5, 0.75), u(0.33, 0.45))
        self.grass = hsv(u(0.17, 0.24), u(0.45, 0.65), u(0.55, 0.68))

    # ------------------------------------------------------------------ projection
    def px(self, x: float, y: float, z: float) -> tuple[float, float]:
        """The image position (column, row; pixel centres at +0.5) of world ``(x, y, z)``."""
        return self.xv + self.f * x / z, self.yh + self.f * (self.hc - y) / z

    def visible(self, x0: float, x1: float, y1: float, z: float) -> bool:
        """Whether a world box ``[x0, x1] × [0, y1]`` at depth ``z`` can touch the frame."""
        a, _ = self.px(x0, 0.0, z)
        b, top = self.px(x1, y1, z)
        return b >= -1 and a <= self.w + 1 and top <= self.h + 1

    # ------------------------------------------------------------------ rasterising
    def rasterise(self) -> tuple[np.ndarray, FacadeColumns]:
        """The stuff layout (ground, facades, far wall, sky) as an ``h×w`` uint16 class map.

        Returns:
            ``(prim, columns)``: the class ids (the first primitive map) and the per-column
            facade geometry the texture needs.
        """
        h, w, f, hc, yh, xv = self.h, self.w, self.f, self.hc, self.yh, self.xv
        yc = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
        xc = np.arange(w, dtype=np.float32) + 0.5
        # Far wall across the street at z_far.
        xf = (xc - xv) * self.z_far / f
        fcls, fid, fhgt = self.far.columns(xf)
        far_top = yh + (hc - fhgt) * f / self.z_far
        far_bot = yh + hc * f / self.z_far
        # Side facades at X = -xb_l (left of the vanishing point) and X = xb_r (right).
        dx = xc - xv
        left = dx < -1e-3
        xb = np.where(left, self.xb_l, self.xb_r)
        zs = np.where(np.abs(dx) > 1e-3, f * xb / np.maximum(np.abs(dx), 1e-3), np.inf)
        zs = zs.astype(np.float32)
        zc = np.minimum(zs, 1e6)
        lcls, lid, lhgt = self.left.columns(zc)
        rcls, rid, rhgt = self.right.columns(zc)
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
        du = np.where(valid, f * xb / np.maximum(zs, 1e-3) ** 2, 0).astype(np.float32)
        columns = FacadeColumns(side_top=s_top, side_depth=zs, side_building=sid,
                                far_building=fid, side_du=du)
        return np.ascontiguousarray(prim, dtype=np.uint16), columns
