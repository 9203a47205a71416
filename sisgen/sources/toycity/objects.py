"""The objects standing on a ToyCity street: cars, people, trees, street lamps, sign posts.

:func:`place_objects` draws them from the scene's random stream -- cars in the lanes and
parked at the curbs (3-D boxes: body, cabin with dark glass, wheels, lights, plate; paints
from a realistic palette), pedestrians on the sidewalks and the crosswalk (skin-tone head,
hair, shirt or dress, trousers, shoes), trees (trunk + leafy crown), lamps and signs (pole +
arm or panel) -- as small records with their depth. Every size follows from the
perspective, so cars and people are scaled consistently with their depth. Drawn back to
front onto a :class:`~.primitives.Canvas`, nearer objects occlude farther ones. Objects
out of the frame are not placed, but their draws still happen, so the scene does not
depend on the resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .classes import CAR, PERSON, POLE, SIGN, VEGETATION
from .layout import Street
from .palette import CAR_WEIGHTS, CARS, HAIR, POLE_GREYS, SKIN, TROUSERS, Rgb, hsv, jitter, scale
from .primitives import Canvas
from .rand import Rand

_RING10 = [(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * np.pi, 10, endpoint=False)]
_RING12 = [(math.cos(a), math.sin(a)) for a in np.linspace(0, 2 * np.pi, 12, endpoint=False)]


def _pole(canvas: Canvas, x: float, z: float, top: float, rgb: Rgb, radius: float) -> None:
    """A vertical pole, its sunlit half brighter."""
    st = canvas.street
    hw = max(radius, 0.5 * z / st.f)
    lit = canvas.part(POLE, 0, scale(rgb, 1.12))
    dark = canvas.part(POLE, 0, scale(rgb, 0.82))
    canvas.fill3([(x - hw, 0, z), (x, 0, z), (x, top, z), (x - hw, top, z)],
                 lit if st.sun < 0 else dark)
    canvas.fill3([(x, 0, z), (x + hw, 0, z), (x + hw, top, z), (x, top, z)],
                 dark if st.sun < 0 else lit)


@dataclass(frozen=True)
class Car:
    """A car: a box body of ``length`` from depth ``z0``, a cabin on top, paints.

    Heights (``belt``, ``roof``) are metres above the ground; the cabin starts
    ``cabin_back`` behind the near face and ends ``cabin_front`` before the far one.
    """

    x: float
    z0: float
    length: float
    half: float
    belt: float
    roof: float
    cabin_back: float
    cabin_front: float
    body: Rgb
    glass: Rgb
    tyre: Rgb
    light: Rgb

    @property
    def depth(self) -> float:
        """The drawing order key (the near face)."""
        return self.z0

    def draw(self, canvas: Canvas) -> None:
        """Draw the car (a silhouette when it is only a few pixels tall)."""
        st, fill3 = canvas.street, canvas.fill3
        xc, z0, belt, roof, glass = self.x, self.z0, self.belt, self.roof, self.glass
        obj = canvas.new_object(CAR)
        x0, x1, z1 = xc - self.half, xc + self.half, z0 + self.length
        y0 = 0.3
        cx0, cx1 = x0 + 0.12, x1 - 0.12
        cz0, cz1 = z0 + self.cabin_back, z1 - self.cabin_front
        p_body = canvas.part(CAR, obj, self.body)
        p_side = canvas.part(CAR, obj, scale(self.body, 0.78))
        if st.f / z0 < 5.0:  # under ~7 px tall: a silhouette with dark glass is enough
            xs = x1 if x1 < 0 else (x0 if x0 > 0 else None)
            if xs is not None:
                fill3([(xs, 0.1, z0), (xs, 0.1, z1), (xs, belt, z1), (xs, belt, z0)], p_side)
            fill3([(cx0, belt, cz0), (cx1, belt, cz0), (cx1, roof, cz0 + 0.25),
                   (cx0, roof, cz0 + 0.25)], canvas.part(CAR, obj, glass))
            fill3([(x0, 0.05, z0), (x1, 0.05, z0), (x1, belt, z0), (x0, belt, z0)], p_body)
            return
        p_top = canvas.part(CAR, obj, scale(self.body, 1.12))
        p_glass = canvas.part(CAR, obj, glass)
        p_glass_s = canvas.part(CAR, obj, scale(glass, 0.8))
        p_tyre = canvas.part(CAR, obj, self.tyre)
        p_dark = canvas.part(CAR, obj, (40, 40, 44))
        p_light = canvas.part(CAR, obj, self.light)
        p_plate = canvas.part(CAR, obj, (214, 214, 206))
        # Rear/front wheels seen under the near face.
        for wx0, wx1 in ((x0 + 0.06, x0 + 0.32), (x1 - 0.32, x1 - 0.06)):
            fill3([(wx0, 0, z0 + 0.75), (wx1, 0, z0 + 0.75), (wx1, 0.5, z0 + 0.75),
                   (wx0, 0.5, z0 + 0.75)], p_tyre)
        # Side face towards the camera, with its wheels.
        xs = x1 if x1 < 0 else (x0 if x0 > 0 else None)
        if xs is not None:
            fill3([(xs, y0, z0), (xs, y0, z1), (xs, belt, z1), (xs, belt, z0)], p_side)
            cxs = cx1 if xs == x1 else cx0
            fill3([(cxs, belt, cz0), (cxs, belt, cz1), (cxs, roof, cz1 - 0.3),
                   (cxs, roof, cz0 + 0.25)], p_glass_s)
            for zc in (z0 + 0.85, z1 - 0.85):
                fill3([(xs, 0.33 + 0.33 * sa, zc + 0.33 * ca) for ca, sa in _RING10], p_tyre)
        # Top of the body (bonnet/boot) and the cabin.
        if belt < st.hc:
            fill3([(x0, belt, z0), (x1, belt, z0), (x1, belt, z1), (x0, belt, z1)], p_top)
        if roof < st.hc:
            fill3([(cx0, roof, cz0 + 0.25), (cx1, roof, cz0 + 0.25), (cx1, roof, cz1 - 0.3),
                   (cx0, roof, cz1 - 0.3)], p_top)
        fill3([(cx0, belt, cz0), (cx1, belt, cz0), (cx1, roof, cz0 + 0.25),
               (cx0, roof, cz0 + 0.25)], p_body)
        fill3([(cx0 + 0.08, belt + 0.04, cz0), (cx1 - 0.08, belt + 0.04, cz0),
               (cx1 - 0.1, roof - 0.06, cz0 + 0.22), (cx0 + 0.1, roof - 0.06, cz0 + 0.22)],
              p_glass)
        # Near face: body, bumper, lights, plate.
        fill3([(x0, y0, z0), (x1, y0, z0), (x1, belt, z0), (x0, belt, z0)], p_body)
        fill3([(x0, y0, z0), (x1, y0, z0), (x1, y0 + 0.14, z0), (x0, y0 + 0.14, z0)], p_dark)
        for lx0, lx1 in ((x0 + 0.06, x0 + 0.36), (x1 - 0.36, x1 - 0.06)):
            fill3([(lx0, belt - 0.26, z0), (lx1, belt - 0.26, z0), (lx1, belt - 0.1, z0),
                   (lx0, belt - 0.1, z0)], p_light)
        fill3([(xc - 0.26, y0 + 0.18, z0), (xc + 0.26, y0 + 0.18, z0),
               (xc + 0.26, y0 + 0.3, z0), (xc - 0.26, y0 + 0.3, z0)], p_plate)


@dataclass(frozen=True)
class Person:
    """A pedestrian of ``height`` metres standing at ``(x, z)``, with clothes and a pose.

    ``stride`` and ``swing`` spread the legs and arms (fractions of the height); the flags
    choose short sleeves, a view from behind (hair instead of a face), a dress and a bag.
    """

    x: float
    z: float
    height: float
    skin: Rgb
    hair: Rgb
    shirt: Rgb
    trousers: Rgb
    shoes: Rgb
    stride: float
    swing: float
    short_sleeves: bool
    back_view: bool
    dress: bool
    bag: bool

    @property
    def depth(self) -> float:
        """The drawing order key."""
        return self.z

    def draw(self, canvas: Canvas) -> None:
        """Draw the person (legs, body and head only when a few pixels tall)."""
        stride, swing = self.stride, self.swing
        obj = canvas.new_object(PERSON)
        bx, by = canvas.street.px(self.x, 0.0, self.z)
        s = canvas.street.f / self.z * self.height  # pixels per body height
        fill = canvas.fill

        def p(dx: float, hy: float) -> tuple[float, float]:
            return bx + dx * s, by - hy * s

        def limb(a: tuple[float, float], b: tuple[float, float], r: float, pid: int) -> None:
            (ax, ay), (bx_, by_) = p(*a), p(*b)
            nx, ny = by_ - ay, ax - bx_
            n = math.hypot(nx, ny) or 1.0
            rr = max(r * s, 0.5)
            nx, ny = nx / n * rr, ny / n * rr
            fill([(ax + nx, ay + ny), (bx_ + nx, by_ + ny), (bx_ - nx, by_ - ny),
                  (ax - nx, ay - ny)], pid)

        p_skin = canvas.part(PERSON, obj, self.skin)
        p_hair = canvas.part(PERSON, obj, self.hair)
        p_shirt = canvas.part(PERSON, obj, self.shirt)
        p_sleeve = canvas.part(PERSON, obj, scale(self.shirt, 0.85))
        p_trousers = canvas.part(PERSON, obj, self.trousers)
        p_shoes = canvas.part(PERSON, obj, self.shoes)
        leg = p_skin if self.dress else p_trousers
        if s < 10.0:  # a few pixels tall: legs, body, head
            fill([p(-0.08 - stride, 0.0), p(0.08 + stride, 0.0), p(0.09, 0.5), p(-0.09, 0.5)],
                 leg)
            fill([p(-0.12, 0.84), p(0.12, 0.84), p(0.1, 0.48), p(-0.1, 0.48)], p_shirt)
            fill([p(-0.055, 1.0), p(0.055, 1.0), p(0.055, 0.85), p(-0.055, 0.85)],
                 p_hair if self.back_view else p_skin)
            return
        for sx in (-1, 1):
            limb((sx * 0.045, 0.5), (sx * 0.05 + sx * stride, 0.03), 0.034, leg)
            limb((sx * 0.05 + sx * stride, 0.045), (sx * 0.05 + sx * stride + 0.02, 0.0),
                 0.03, p_shoes)
        fill([p(-0.12, 0.82), p(0.12, 0.82), p(0.09, 0.48), p(-0.09, 0.48)], p_shirt)
        if self.dress:
            fill([p(-0.09, 0.5), p(0.09, 0.5), p(0.13, 0.3), p(-0.13, 0.3)], p_shirt)
        elif not self.bag:
            fill([p(-0.092, 0.53), p(0.092, 0.53), p(0.09, 0.47), p(-0.09, 0.47)], p_trousers)
        for sx, sw in ((-1, swing), (1, -swing)):
            elbow = (sx * 0.14 + sw * 0.5, 0.63)
            limb((sx * 0.115, 0.8), elbow, 0.03, p_sleeve)
            limb(elbow, (sx * 0.14 + sw, 0.45), 0.026,
                 p_skin if self.short_sleeves else p_sleeve)
        if self.bag:
            fill([p(0.1, 0.66), p(0.2, 0.66), p(0.2, 0.5), p(0.1, 0.5)],
                 canvas.part(PERSON, obj, (52, 40, 34)))
        limb((0.0, 0.82), (0.0, 0.87), 0.03, p_skin)
        cx, cy = p(0.0, 0.925)
        ry, rx = 0.068 * s, 0.056 * s

        def ellipse(cx: float, cy: float, rx: float, ry: float) -> list[tuple[float, float]]:
            rx, ry = max(rx, 0.5), max(ry, 0.5)
            return [(cx + rx * ca, cy + ry * sa) for ca, sa in _RING12]

        fill(ellipse(cx, cy - 0.08 * ry, rx * 1.06, ry * 1.02), p_hair)
        if not self.back_view:
            fill(ellipse(cx, cy + 0.2 * ry, rx * 0.92, ry * 0.82), p_skin)


@dataclass(frozen=True)
class Tree:
    """A tree at ``(x, z)``: a trunk of ``trunk_h`` metres and a crown of ``blobs``.

    Each blob is ``(dx, y, r)``: a leafy disc of radius ``r`` centred ``dx`` beside the
    trunk at height ``y`` (metres). The trunk is a vegetation part; the crown is textured
    foliage.
    """

    x: float
    z: float
    trunk_h: float
    blobs: list[tuple[float, float, float]]
    bark: Rgb

    @property
    def depth(self) -> float:
        """The drawing order key."""
        return self.z

    def draw(self, canvas: Canvas) -> None:
        """Draw the trunk, then the crown's discs."""
        x, z = self.x, self.z
        s = canvas.street.f / z
        hw = max(0.14, 0.5 / s)
        canvas.fill3([(x - hw, 0, z), (x + hw, 0, z), (x + hw * 0.8, self.trunk_h + 0.8, z),
                      (x - hw * 0.8, self.trunk_h + 0.8, z)],
                     canvas.part(VEGETATION, 0, self.bark))
        for dx, y, r in self.blobs:
            cx, cy = canvas.street.px(x + dx, y, z)
            canvas.disc(cx, cy, r * s, VEGETATION)


@dataclass(frozen=True)
class Lamp:
    """A street lamp at ``(x, z)``: a pole of ``top`` metres, an ``arm`` (signed) and a head."""

    x: float
    z: float
    top: float
    arm: float
    rgb: Rgb

    @property
    def depth(self) -> float:
        """The drawing order key."""
        return self.z

    def draw(self, canvas: Canvas) -> None:
        """Draw the pole, the arm and the lamp head."""
        x, z, top, arm, rgb = self.x, self.z, self.top, self.arm, self.rgb
        _pole(canvas, x, z, top, rgb, 0.1)
        hw = max(0.06, 0.5 * z / canvas.street.f)
        pid = canvas.part(POLE, 0, rgb)
        canvas.fill3([(x, top - hw, z), (x + arm, top + 0.15 - hw, z),
                      (x + arm, top + 0.15 + hw, z), (x, top + hw, z)], pid)
        head = canvas.part(POLE, 0, scale(rgb, 0.7))
        canvas.fill3([(x + arm - 0.35, top + 0.02, z), (x + arm + 0.2, top + 0.02, z),
                      (x + arm + 0.2, top + 0.22, z), (x + arm - 0.35, top + 0.22, z)], head)


@dataclass(frozen=True)
class Sign:
    """A sign post at ``(x, z)``: a pole of ``top`` metres carrying a panel of ``size``.

    ``kind``: 0 blue information panel, 1 round prohibition sign, 2 warning triangle,
    3 priority road diamond, 4 round blue mandatory sign.
    """

    x: float
    z: float
    top: float
    size: float
    kind: int
    rgb: Rgb

    @property
    def depth(self) -> float:
        """The drawing order key."""
        return self.z

    def draw(self, canvas: Canvas) -> None:
        """Draw the pole and the panel (a coloured shape with a white or yellow inset)."""
        x, z, top, size, kind = self.x, self.z, self.top, self.size, self.kind
        _pole(canvas, x, z, top, self.rgb, 0.05)
        s = canvas.street.f / z
        cx, cy = canvas.street.px(x, top + size / 2, z)
        r = max(size / 2 * s, 1.0)
        red, white = (196, 28, 32), (228, 228, 222)
        blue, yellow = (28, 76, 170), (236, 186, 30)

        def shape(n: int, rr: float, rot: float, rgb_: Rgb, dy: float = 0.0) -> None:
            canvas.fill([(cx + rr * math.cos(rot + 2 * math.pi * i / n),
                          cy + dy + rr * math.sin(rot + 2 * math.pi * i / n))
                         for i in range(n)], canvas.part(SIGN, 0, rgb_))

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


SceneObject = Car | Person | Tree | Lamp | Sign


class _Placer:
    """Collects the objects placed on ``street`` and their ground shadows."""

    def __init__(self, street: Street, rng: Rand) -> None:
        self.street = street
        self.rng = rng
        self.objects: list[SceneObject] = []
        self.shadows: list[np.ndarray] = []

    def car(self, xc: float, z0: float, length: float, front: bool) -> None:
        rng, st = self.rng, self.street
        u = rng.uniform
        half = u(0.84, 0.95)
        if not st.visible(xc - half, xc + half, 1.5, z0 + length):
            return
        # Contact shadow on the ground.
        self.shadows.append(np.array([st.px(xc - half - 0.15, 0, z0 - 0.2),
                                      st.px(xc + half + 0.15, 0, z0 - 0.2),
                                      st.px(xc + half + 0.15, 0, z0 + length),
                                      st.px(xc - half - 0.15, 0, z0 + length)]))
        body = CARS[rng.weighted(CAR_WEIGHTS)][0]
        body = body if sum(body) else hsv(u(0, 1), u(0.4, 0.9), u(0.3, 0.9))
        body = jitter(rng, body, 0.1)
        glass = jitter(rng, (38, 46, 58), 0.2)
        light = (235, 235, 210) if front else (200, 20, 24)
        self.objects.append(Car(
            x=xc, z0=z0, length=length, half=half, belt=u(0.9, 1.02), roof=u(1.35, 1.55),
            cabin_back=u(0.8, 1.1), cabin_front=u(0.9, 1.3), body=body, glass=glass,
            tyre=(24, 24, 26), light=light))

    def person(self, x: float, z: float) -> None:
        rng, st = self.rng, self.street
        u = rng.uniform
        hgt = u(1.55, 1.95) if rng.random() < 0.88 else u(1.05, 1.4)
        if not st.visible(x - 0.4, x + 0.4, hgt, z):
            return
        self.shadows.append(np.array([st.px(x + dx, 0, z + dz) for dx, dz in
                                      ((-0.35, -0.2), (0.35, -0.2), (0.45, 0.5), (-0.25, 0.5))]))
        skin = jitter(rng, rng.choice(SKIN), 0.06)
        hair = jitter(rng, rng.choice(HAIR), 0.1)
        shirt = hsv(u(0, 1), u(0.2, 0.9), u(0.35, 0.95))
        trousers = jitter(rng, rng.choice(TROUSERS), 0.12) if rng.random() < 0.8 \
            else hsv(u(0, 1), u(0.2, 0.7), u(0.2, 0.7))
        shoes = (30, 26, 26) if rng.random() < 0.7 else (210, 210, 205)
        self.objects.append(Person(
            x=x, z=z, height=hgt, skin=skin, hair=hair, shirt=shirt, trousers=trousers,
            shoes=shoes, stride=u(-0.06, 0.06), swing=u(-0.06, 0.06),
            short_sleeves=rng.random() < 0.3, back_view=rng.random() < 0.35,
            dress=rng.random() < 0.15, bag=rng.random() < 0.2))

    def tree(self, x: float, z: float) -> None:
        u = self.rng.uniform
        trunk_h, r = u(1.8, 3.2), u(1.2, 2.6)
        if not self.street.visible(x - r, x + r, trunk_h + 2 * r, z):
            return
        blobs = [(u(-0.7, 0.7) * r, trunk_h + r * u(0.5, 1.4), r * u(0.45, 0.8))
                 for _ in range(int(self.rng.integers(5, 9)))]
        bark = jitter(self.rng, (84, 66, 50), 0.15)
        self.objects.append(Tree(x, z, trunk_h, blobs, bark))

    def lamp(self, x: float, z: float, arm: float) -> None:
        top = self.rng.uniform(6.0, 9.0)
        if not self.street.visible(min(x, x + arm) - 0.3, max(x, x + arm) + 0.3, top + 0.3, z):
            return
        rgb = jitter(self.rng, self.rng.choice(POLE_GREYS), 0.08)
        self.objects.append(Lamp(x, z, top, arm, rgb))

    def sign(self, x: float, z: float) -> None:
        u = self.rng.uniform
        top, size = u(2.2, 2.9), u(0.55, 0.85)
        if not self.street.visible(x - size, x + size, top + size, z):
            return
        kind = int(self.rng.integers(5))
        rgb = jitter(self.rng, (138, 142, 150), 0.08)
        self.objects.append(Sign(x, z, top, size, kind, rgb))


def place_objects(street: Street, rng: Rand) -> tuple[list[SceneObject], list[np.ndarray]]:
    """Place the objects of ``street``, drawing from ``rng`` after the layout's draws.

    Returns:
        ``(objects, shadows)``: the visible objects in placement order and the image
        polygons (``K×2`` float arrays) of the contact shadows under cars and people.
    """
    st, add = street, _Placer(street, rng)
    u = rng.uniform
    lw = st.lane_w
    # Cars in the driving lanes.
    for i in range(st.lanes):
        xc = -st.road_l + st.park_l + (i + 0.5) * lw + u(-0.3, 0.3)
        oncoming = st.two_way and i < st.lanes // 2
        z = u(7.0, 16.0) if abs(xc) < lw / 2 else u(4.0, 14.0)
        while z < 65.0:
            length = u(3.8, 4.9)
            if rng.random() < 0.45:
                add.car(xc, z, length, front=oncoming)
            z += length + u(4.0, 28.0)
    # Parked cars along the curbs.
    for sgn, park in ((-1, st.park_l), (1, st.park_r)):
        if not park:
            continue
        xc = sgn * (st.road_r if sgn > 0 else st.road_l) - sgn * 1.1
        z = u(2.0, 8.0)
        while z < 60.0:
            length = u(3.8, 4.9)
            if rng.random() < 0.55:
                add.car(xc + u(-0.15, 0.15), z, length, front=rng.random() < 0.3)
            z += length + u(0.6, 5.0)
    # Pedestrians on the sidewalks (and sometimes on the grass).
    for sgn in (-1, 1):
        edge = st.road_l if sgn < 0 else st.road_r
        width = st.side_l if sgn < 0 else st.side_r
        for _ in range(int(rng.integers(1, 6))):
            x = sgn * (edge + u(0.3, width - 0.3))
            z = u(max(4.0, 1.6 * abs(x)), 42.0)
            add.person(x, z)
    if st.crosswalk is not None:
        for _ in range(int(rng.integers(0, 4))):
            add.person(u(-st.road_l, st.road_r), st.crosswalk + u(0.3, 2.7))
    # Trees, street lamps and sign posts.
    for sgn in (-1, 1):
        edge = st.road_l if sgn < 0 else st.road_r
        grass = st.grass_l if sgn < 0 else st.grass_r
        side = st.side_l if sgn < 0 else st.side_r
        if rng.random() < 0.6:
            x = sgn * (edge + side + grass / 2) if grass else sgn * (edge + 0.8)
            z = u(0.0, 12.0)
            while z < 70.0:
                if z > 3.0:
                    add.tree(x + u(-0.3, 0.3), z)
                z += u(6.0, 14.0)
        if rng.random() < 0.75:
            z, arm = u(3.0, 20.0), u(1.0, 2.2)
            while z < 75.0:
                add.lamp(sgn * (edge + 0.45), z, -sgn * arm)
                z += u(18.0, 34.0)
    for _ in range(int(rng.integers(1, 4))):
        sgn = -1 if rng.random() < 0.5 else 1
        edge = st.road_l if sgn < 0 else st.road_r
        add.sign(sgn * (edge + u(0.3, 0.9)), u(5.0, 45.0))
    return add.objects, add.shadows


def draw_objects(canvas: Canvas, objects: list[SceneObject]) -> None:
    """Draw ``objects`` back to front (placement order among equal depths)."""
    for obj in sorted(objects, key=lambda o: -o.depth):
        obj.draw(canvas)
