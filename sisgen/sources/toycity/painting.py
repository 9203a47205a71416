"""Painting a ToyCity primitive map into the label map, the instance map and the photo.

Stuff regions (sky, road, sidewalk, building, vegetation, terrain) are textured from their
own coordinates (ground-plane or facade coordinates) plus noise fields: sky gradient and
clouds, asphalt with lane, edge and zebra markings, paving tiles and a bright curb, grass,
foliage, facades with window grids, shop floors and cornices. Drawn parts (poles, signs,
cars, people) carry their flat colours. A per-image light -- gain, colour temperature, the
sun's side with a cast shadow on the ground, contact shadows under cars and people,
vignetting and sensor noise -- varies the look without hiding the classes.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .classes import NUM_CLASSES, ROAD, SIDEWALK, SKY, TERRAIN, TEXTURED, VEGETATION
from .layout import FacadeColumns, Street
from .primitives import Canvas


# ------------------------------------------------------------------------------ labels
def label_maps(canvas: Canvas) -> tuple[np.ndarray, np.ndarray]:
    """The label map and the instance map of a drawn canvas.

    Returns:
        ``(semantic, instance)``: ``H×W`` uint8 class ids and ``H×W`` int32
        Cityscapes-style instance ids (``class*1000 + k`` on thing pixels, ``k`` counting
        the *visible* instances of a class from 0; 0 elsewhere).
    """
    prim = canvas.prim
    semantic = np.array(canvas.part_cls, np.uint8)[prim]
    objmap = np.array(canvas.part_obj, np.int32)[prim]
    present = np.flatnonzero(np.bincount(objmap.ravel(), minlength=len(canvas.obj_cls)))
    lut = np.zeros(len(canvas.obj_cls), np.int32)
    counts = [0] * NUM_CLASSES
    for o in present[present > 0]:
        c = canvas.obj_cls[o]
        lut[o] = c * 1000 + counts[c]
        counts[c] += 1
    return semantic, lut[objmap]


# ------------------------------------------------------------------------------- photo
def shadow_mask(shadows: list[np.ndarray], h: int, w: int) -> np.ndarray | None:
    """The contact shadows (image polygons) as an ``h×w`` uint8 mask, ``None`` if none."""
    if not shadows:
        return None
    mask = np.zeros((h, w), np.uint8)
    for pts in shadows:
        cv2.fillPoly(mask, [np.rint((pts - 0.5) * 16).astype(np.int32)], 1, cv2.LINE_8, 4)
    return mask


def paint(street: Street, canvas: Canvas, columns: FacadeColumns, semantic: np.ndarray,
          shadow: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """The ``H×W×3`` uint8 RGB photo of a drawn canvas.

    Args:
        street: The scene's layout (camera, materials, light).
        canvas: The drawn primitive map.
        columns: The facade geometry from :meth:`~.layout.Street.rasterise`.
        semantic: The label map (contact shadows fall on the ground classes only).
        shadow: The contact shadow mask, or ``None``.
        rng: The pixel noise generator (seeded per resolution).
    """
    h, w = canvas.prim.shape
    photo, sensor_noise = _texture(street, canvas, columns, rng)
    if shadow is not None:
        ground = (semantic == ROAD) | (semantic == SIDEWALK) | (semantic == TERRAIN)
        photo[(ground & (shadow > 0)).ravel()] *= 0.5
    photo *= _vignette(h, w) * (street.gain * street.temp)
    photo += sensor_noise
    return np.clip(photo, 0, 255, out=photo).astype(np.uint8).reshape(h, w, 3)


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


# ---------------------------------------------------------------------------- textures
def _texture(st: Street, canvas: Canvas, columns: FacadeColumns, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
    """Colour every pixel: flat colours for drawn parts, textures for stuff classes.

    Returns:
        ``(photo, sensor_noise)``: ``H*W×3`` float32 colours before the light, and the
        ``H*W×1`` sensor noise to add after it.
    """
    prim = canvas.prim
    h, w = prim.shape
    flat = prim.ravel()
    table = np.array(canvas.part_rgb, np.float32)
    photo = table[flat]
    n_hi = rng.random(h * w, dtype=np.float32) * 2.0 - 1.0
    sensor_noise = (np.roll(n_hi, 7) * 4.0)[:, None]
    n_lo = _smooth_noise(rng, h, w, 7, 13)
    n_mid = _smooth_noise(rng, h, w, 17, 33)
    n_leaf = _smooth_noise(rng, h, w, max(4, h // 5), max(4, w // 5))
    f, hc, yh, xv = st.f, st.hc, st.yh, st.xv

    def coords(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = idx // w
        return y, idx - y * w

    for cls in TEXTURED:
        idx = np.flatnonzero(flat == cls)
        if idx.size == 0:
            continue
        y, x = coords(idx)
        yc = y.astype(np.float32) + 0.5
        hi, lo, mid = n_hi[idx], n_lo[idx], n_mid[idx]
        if cls == SKY:
            t = np.clip(yc / max(yh, 1.0), 0.0, 1.0)[:, None]
            col = np.array(st.sky_top, np.float32) * (1 - t) + np.array(st.sky_hor,
                                                                         np.float32) * t
            cloud = np.clip((lo + 0.6 * mid - 1.0 + 1.6 * st.cloud_cover) * 2.5, 0, 1)
            cloud = (cloud * (0.9 + 0.1 * hi))[:, None]
            shade = (0.82 + 0.18 * np.clip(mid + 0.5, 0, 1))[:, None]
            col = col * (1 - cloud) + np.float32(238) * shade * cloud
        elif cls in (ROAD, SIDEWALK, TERRAIN):
            dy = np.maximum(yc - yh, 1e-3)
            zg = f * hc / dy
            xg = (x.astype(np.float32) + 0.5 - xv) * (hc / dy)
            s = f / zg  # pixels per metre here
            if cls == ROAD:
                col = np.array(st.asphalt, np.float32) * (1 + 0.08 * lo + 0.07 * hi)[:, None]
                col = _road_marks(st, col, xg, zg, s)
            elif cls == SIDEWALK:
                col = np.array(st.paving, np.float32) * (1 + 0.05 * lo + 0.05 * hi)[:, None]
                fade = np.clip((st.tile * s - 3.0) / 4.0, 0, 1)
                tu, tz = xg / st.tile, zg / (st.tile * 1.5)
                seam = (((tu - np.floor(tu)) < 0.09) | ((tz - np.floor(tz)) < 0.06))
                col *= (1 - 0.18 * seam * fade)[:, None]
                curb = (np.abs(xg + st.road_l) < 0.22) | (np.abs(xg - st.road_r) < 0.22)
                col[curb] = col[curb] * 1.18 + 10
            else:
                col = np.array(st.grass, np.float32) * (
                    1 + 0.1 * lo + 0.12 * mid + 0.12 * hi)[:, None]
            if st.sun_shadow is not None:
                shade = (xg - st.sun_shadow) * st.sun > 0
                col[shade] *= 0.68
        elif cls == VEGETATION:
            leaf = np.clip(n_leaf[idx] * 0.9 + 0.35 * hi + 0.25, -1, 1)
            col = np.array(st.leaf, np.float32) * (0.85 + 0.5 * leaf + 0.1 * lo)[:, None]
        else:
            col = _facade(st, columns, y, x, yc, lo, hi)
        photo[idx] = col
    return photo, sensor_noise


def _road_marks(st: Street, col: np.ndarray, xg: np.ndarray, zg: np.ndarray,
                s: np.ndarray) -> np.ndarray:
    """Lane lines, edge lines and a zebra crossing on the asphalt."""
    half = np.maximum(0.07, 0.5 / s)  # a line is at least one pixel wide
    white = np.zeros(xg.shape, bool)
    lane0 = -st.road_l + st.park_l
    dash = (zg / 9.0 - np.floor(zg / 9.0)) < 0.42
    centre = st.lanes // 2 if st.two_way else -1
    yellow = np.zeros(xg.shape, bool)
    for i in range(1, st.lanes):
        line = np.abs(xg - (lane0 + i * st.lane_w)) < half
        if i == centre and st.yellow_center:
            yellow |= line
        elif i == centre:
            white |= line
        else:
            white |= line & dash
    for edge in (lane0 + 0.25, lane0 + st.lanes * st.lane_w - 0.25):
        white |= np.abs(xg - edge) < half
    if st.crosswalk is not None:
        band = (zg > st.crosswalk) & (zg < st.crosswalk + 3.0)
        white |= band & ((xg / 1.0 - np.floor(xg / 1.0)) < 0.5) & (s > 1.5)
    col[white] = col[white] * 0.3 + np.float32(168)
    col[yellow] = col[yellow] * 0.3 + np.array([172, 140, 40], np.float32)
    return col


# A building's numbers (Building.row): wall RGB, glass RGB, then window spacing and width,
# floor height, window bottom and top, ground floor height, block height.
_WS, _WW, _FH, _WH0, _WH1, _GF, _TOP = range(6, 13)
# The per-column facade record (_facade_columns): depth, building, window column index,
# in-window and in-shop-front flags, anti-aliasing fade, side light, window area fraction,
# then the building's numbers from column _B on.
_Z, _SEG, _COL, _WIN_U, _SHOP_U, _FADE, _LIT, _AREA, _B = range(9)


def _facade_columns(st: Street, columns: FacadeColumns) -> np.ndarray:
    """Per-column facade records: rows ``0..W-1`` side facades, ``W..2W-1`` the far wall.

    Everything about a building pixel that depends only on its column (depth, building,
    horizontal window position, anti-aliasing fade, colours) is computed once per column.
    """
    w, f = st.w, st.f
    tab = np.array([b.row() for b in st.buildings] or [(0.0,) * 13], np.float32)
    xc = np.arange(w, dtype=np.float32) + 0.5
    zs = np.concatenate([np.minimum(columns.side_depth, 1e6),
                         np.full(w, st.z_far, np.float32)])
    seg = np.maximum(np.concatenate([columns.side_building, columns.far_building]), 0)
    uu = np.concatenate([columns.side_depth, (xc - st.xv) * st.z_far / f])
    du = np.concatenate([columns.side_du, np.full(w, f / st.z_far, np.float32)])
    t = tab[seg]
    ws, fh = t[:, _WS], t[:, _FH]
    fu = np.where(np.isfinite(uu), uu, 0) / ws
    coli = np.floor(fu)
    fu -= coli
    win_u = np.abs(fu - 0.5) < t[:, _WW] / 2
    shop_u = np.abs(fu - 0.5) < 0.42
    fade = np.clip((np.minimum(ws * du, fh * f / zs) - 2.0) / 3.0, 0, 1)
    left = np.concatenate([xc < st.xv, np.zeros(w, bool)])
    lit = np.concatenate([np.where(left[:w] == (st.sun < 0), 1.1, 0.86), np.full(w, 0.95)])
    area = t[:, _WW] * (t[:, _WH1] - t[:, _WH0])
    return np.column_stack([zs, seg, coli, win_u, shop_u, fade, lit, area, t]).astype(
        np.float32)


def _facade(st: Street, columns: FacadeColumns, y: np.ndarray, x: np.ndarray,
            yc: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Building texture: wall colour, window grid, shop floor and cornice per building."""
    cols = _facade_columns(st, columns)
    side = yc >= columns.side_top[x]
    r = cols[np.where(side, x, x + st.w)]
    zs, gf, fh, top = r[:, _Z], r[:, _B + _GF], r[:, _B + _FH], r[:, _B + _TOP]
    vv = st.hc - (yc - st.yh) * (zs / st.f)
    fv = (vv - gf) / fh
    rowi = np.floor(fv)
    fv -= rowi
    upper = vv >= gf
    in_window = (fv > r[:, _B + _WH0]) & (fv < r[:, _B + _WH1]) & (vv < top - 0.8)
    win = np.where(upper, (r[:, _WIN_U] > 0) & in_window,
                   (r[:, _SHOP_U] > 0) & (vv > 0.35) & (vv < gf - 0.7))
    tone = _hash01(r[:, _COL], rowi, r[:, _SEG])
    k = np.where(upper, np.where(vv > top - 0.4, 0.72, 1.0), 0.85) * (1 + 0.05 * (lo + hi))
    wall = r[:, _B:_B + 3] * k[:, None]
    glass = r[:, _B + 3:_B + 6] * (0.65 + 0.9 * tone)[:, None]
    area = r[:, _AREA:_AREA + 1]
    blur = wall * (1 - area) + r[:, _B + 3:_B + 6] * area
    fade = r[:, _FADE:_FADE + 1]
    out = np.where(win[:, None], glass, wall)
    return (blur + fade * (out - blur)) * r[:, _LIT:_LIT + 1]
