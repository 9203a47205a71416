"""Vocabularies: the class lists of label maps, with presets and custom files.

A :class:`Vocabulary` names every class id a label map may contain, its display colour and
whether it is a *thing* (countable, has instances) or *stuff*. Id 255 is always the ignore
id. Presets: ``cityscapes`` (labelIds 0..33 with the trainId table), ``coco_stuff``
(COCO id - 1 = 0..181), ``coco_panoptic`` (the 133 COCO panoptic categories, stored
contiguously as 0..132 in category-id order; :data:`COCO_PANOPTIC_CATEGORY_IDS` maps back
to the COCO ids), ``cityscapes_trainid`` (the 19 Cityscapes trainIds 0..18),
``ade20k`` (1..150, 0 = other) and ``toycity``; custom vocabularies load from a JSON or
YAML file with :meth:`Vocabulary.from_file`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SisgenInputError
from .labelmap import IGNORE_ID


@dataclass(frozen=True)
class ClassInfo:
    """One class of a vocabulary.

    Attributes:
        id: The value stored in label maps.
        name: A unique, human-readable name.
        color: Display colour ``(r, g, b)``.
        is_thing: Countable objects with instances (cars, people) as opposed to stuff.
        train_id: Optional id in a reduced training id space (Cityscapes trainIds);
            255 where the class is ignored there.
    """

    id: int
    name: str
    color: tuple[int, int, int]
    is_thing: bool = False
    train_id: int | None = None


@dataclass
class Vocabulary:
    """The class list of a dataset.

    Attributes:
        name: Vocabulary name (``cityscapes``, ``coco_stuff``, ...).
        classes: The classes, sorted by id.
        ignore_id: The id of ignored/unlabeled pixels (255).
    """

    name: str
    classes: list[ClassInfo]
    ignore_id: int = IGNORE_ID
    _by_id: dict[int, ClassInfo] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, ClassInfo] = field(init=False, repr=False, compare=False)
    _tables: dict[str, np.ndarray] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.classes = sorted(self.classes, key=lambda c: c.id)
        self._by_id = {}
        self._by_name = {}
        self._tables = {}
        for c in self.classes:
            if not 0 <= c.id < 255:
                raise ValueError(f"vocabulary {self.name!r}: class id {c.id} outside 0..254")
            if c.id in self._by_id:
                raise ValueError(f"vocabulary {self.name!r}: duplicate class id {c.id}")
            if c.name in self._by_name:
                raise ValueError(f"vocabulary {self.name!r}: duplicate class name {c.name!r}")
            self._by_id[c.id] = c
            self._by_name[c.name] = c

    # ----------------------------------------------------------------------- lookups
    @property
    def num_classes(self) -> int:
        """Number of label channels a model needs: the largest id + 1 (ids may have gaps)."""
        return self.classes[-1].id + 1

    @property
    def ids(self) -> list[int]:
        """All valid class ids, ascending."""
        return [c.id for c in self.classes]

    @property
    def names(self) -> list[str]:
        """All class names, in id order."""
        return [c.name for c in self.classes]

    @property
    def thing_ids(self) -> list[int]:
        """Ids of the thing classes."""
        return [c.id for c in self.classes if c.is_thing]

    def thing_table(self) -> np.ndarray:
        """A read-only 256-entry bool lookup table: ``True`` at the thing class ids."""
        return self._table("thing", self.thing_ids)

    def stuff_table(self) -> np.ndarray:
        """A read-only 256-entry bool lookup table: ``True`` at the stuff class ids."""
        return self._table("stuff", [c.id for c in self.classes if not c.is_thing])

    def valid_table(self) -> np.ndarray:
        """A read-only 256-entry bool lookup table: ``True`` at every class id."""
        return self._table("valid", self.ids)

    def _table(self, kind: str, ids: list[int]) -> np.ndarray:
        table = self._tables.get(kind)
        if table is None:
            table = np.zeros(256, dtype=bool)
            table[ids] = True
            table.flags.writeable = False
            self._tables[kind] = table
        return table

    def __len__(self) -> int:
        return len(self.classes)

    def __contains__(self, class_id: object) -> bool:
        return class_id in self._by_id

    def __getitem__(self, key: int | str) -> ClassInfo:
        """A class by id or by name."""
        try:
            return self._by_name[key] if isinstance(key, str) else self._by_id[int(key)]
        except KeyError:
            raise KeyError(f"vocabulary {self.name!r} has no class {key!r}") from None

    def resolve(self, key: int | str) -> int:
        """Turn a class name or id into an id, with a helpful error for unknown names."""
        if isinstance(key, str) and key not in self._by_name:
            if key.isdigit():
                key = int(key)
            else:
                close = [n for n in self._by_name if key.lower() in n.lower()][:5]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise SisgenInputError(f"vocabulary {self.name!r} has no class {key!r}{hint}")
        if isinstance(key, int) and key not in self._by_id and key != self.ignore_id:
            raise SisgenInputError(f"vocabulary {self.name!r} has no class id {key}")
        return key if isinstance(key, int) else self._by_name[key].id

    def palette(self) -> np.ndarray:
        """A ``256×3`` uint8 colour table indexed by id (ignore and unused ids are black)."""
        table = self._tables.get("palette")
        if table is None:
            table = np.zeros((256, 3), dtype=np.uint8)
            for c in self.classes:
                table[c.id] = c.color
            table.flags.writeable = False
            self._tables["palette"] = table
        return table

    def colorize(self, semantic: np.ndarray) -> np.ndarray:
        """Render a label map as an ``H×W×3`` RGB image with the vocabulary's colours."""
        if semantic.dtype != np.uint8:
            semantic = np.clip(semantic, 0, 255).astype(np.uint8)
        packed = self._tables.get("packed_palette")
        if packed is None:  # one 4-byte gather per pixel is ~3x faster than a 3-byte row gather
            rgba = np.zeros((256, 4), np.uint8)
            rgba[:, :3] = self.palette()
            packed = self._tables["packed_palette"] = rgba.view(np.uint32)[:, 0].copy()
        out = packed[semantic].view(np.uint8).reshape(*semantic.shape, 4)
        return out[..., :3]

    def train_id_table(self) -> np.ndarray:
        """A 256-entry lookup table id -> train id (255 where ignored).

        Raises:
            ValueError: The vocabulary defines no train ids.
        """
        if all(c.train_id is None for c in self.classes):
            raise ValueError(f"vocabulary {self.name!r} has no train-id table")
        lut = np.full(256, IGNORE_ID, dtype=np.uint8)
        for c in self.classes:
            if c.train_id is not None:
                lut[c.id] = c.train_id
        return lut

    def validate(self, semantic: np.ndarray, path: str | os.PathLike | None = None) -> None:
        """Check that every value of ``semantic`` is a class id or the ignore id.

        Raises:
            SisgenInputError: Naming ``path`` and the offending ids.
        """
        bad = [int(v) for v in self._outside(np.asarray(semantic))]
        if bad:
            shown = ", ".join(map(str, bad[:10])) + (" ..." if len(bad) > 10 else "")
            raise SisgenInputError(
                f"ids outside the {self.name!r} vocabulary: {shown} (valid: {self.ids[0]}.."
                f"{self.ids[-1]} and {self.ignore_id} = ignore)",
                path,
            )

    def _outside(self, semantic: np.ndarray) -> np.ndarray:
        """The distinct values of ``semantic`` that are neither a class id nor ignore, sorted.

        One ``bincount`` over the pixels (a histogram, no sort) whenever the values fit a
        small table -- always for uint8 maps; ``np.unique`` only for exotic ranges.
        """
        if semantic.size == 0:
            return np.zeros(0, np.int64)
        known = self._table("known", [*self.ids, self.ignore_id])  # built once
        lo, hi = int(semantic.min()), int(semantic.max())
        if 0 <= lo and hi < 256 and known[lo:hi + 1].all():  # all values known: no histogram
            return np.zeros(0, np.int64)
        if semantic.dtype == np.uint8:
            counts = np.bincount(semantic.ravel(), minlength=256)
            return np.flatnonzero((counts > 0) & ~known)
        if lo >= 0 and hi < 1 << 16:
            counts = np.bincount(semantic.ravel(), minlength=256)
            present = np.flatnonzero(counts)
        else:
            present = np.unique(semantic).astype(np.int64)
        inside = (present >= 0) & (present < 256)
        ok = np.zeros(len(present), bool)
        ok[inside] = known[present[inside]]
        return present[~ok]

    # ---------------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description that :meth:`from_dict` reads back."""
        out = []
        for c in self.classes:
            d: dict[str, Any] = {"id": c.id, "name": c.name, "color": list(c.color),
                                 "is_thing": c.is_thing}
            if c.train_id is not None:
                d["train_id"] = c.train_id
            out.append(d)
        return {"name": self.name, "ignore_id": self.ignore_id, "classes": out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> Vocabulary:
        """Build a vocabulary from :meth:`to_dict`'s form (also the custom-file form).

        Each class needs ``id`` and ``name``; ``color`` defaults to a generated palette
        colour, ``is_thing`` to false.
        """
        try:
            raw = data["classes"]
            classes = [
                ClassInfo(
                    id=int(c["id"]),
                    name=str(c["name"]),
                    color=tuple(int(v) for v in c.get("color", default_color(int(c["id"])))),
                    is_thing=bool(c.get("is_thing", False)),
                    train_id=None if c.get("train_id") is None else int(c["train_id"]),
                )
                for c in raw
            ]
            if not classes:
                raise ValueError("no classes")
            return cls(str(data.get("name", "custom")), classes,
                       int(data.get("ignore_id", IGNORE_ID)))
        except (KeyError, TypeError, ValueError) as e:
            raise SisgenInputError(f"invalid vocabulary description ({e!r})", source) from e

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Vocabulary:
        """Load a custom vocabulary from JSON or YAML.

        The file holds ``{"name": ..., "classes": [{"id": 0, "name": "road",
        "color": [128, 64, 128], "is_thing": false}, ...]}``.
        """
        path = Path(path)
        if not path.is_file():
            raise SisgenInputError("vocabulary file not found", path)
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as e:  # yaml and json raise different types
            raise SisgenInputError(f"cannot parse vocabulary file ({e})", path) from e
        if not isinstance(data, Mapping):
            raise SisgenInputError("vocabulary file must hold a mapping with 'classes'", path)
        return cls.from_dict(data, source=str(path))


def require_same_ids(source: Vocabulary, model: Vocabulary | None) -> None:
    """Check that label maps of ``source`` can feed a model trained on ``model``.

    The model must know exactly the source's class ids (names and colours may differ:
    a converted checkpoint may carry its own names). ``model=None`` (a model that records
    no vocabulary) always passes.

    Raises:
        SisgenInputError: The id sets differ; names both vocabularies and their sizes.
    """
    if model is not None and model.ids != source.ids:
        raise SisgenInputError(
            f"the source's vocabulary {source.name!r} ({len(source)} classes) does not match "
            f"the model's {model.name!r} ({len(model)} classes)"
        )


def default_color(class_id: int) -> tuple[int, int, int]:
    """A deterministic, well-spread colour for an id (bit-interleaved palette)."""
    r = g = b = 0
    c = class_id + 1
    for shift in range(7, -1, -1):
        r |= ((c >> 0) & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return r, g, b


def _simple(name: str, names: Iterable[str], first_id: int, things: Iterable[str] = ()
            ) -> Vocabulary:
    things = set(things)
    return Vocabulary(
        name,
        [ClassInfo(first_id + i, n, default_color(first_id + i), n in things)
         for i, n in enumerate(names)],
    )


# --------------------------------------------------------------------- Cityscapes
# (labelId, name, trainId, is_thing, colour) for labelIds 0..33, as in the dataset's
# definition; license plate (-1) is not a label map value and is left out.
_CITYSCAPES = [
    (0, "unlabeled", 255, False, (0, 0, 0)),
    (1, "ego vehicle", 255, False, (0, 0, 0)),
    (2, "rectification border", 255, False, (0, 0, 0)),
    (3, "out of roi", 255, False, (0, 0, 0)),
    (4, "static", 255, False, (0, 0, 0)),
    (5, "dynamic", 255, False, (111, 74, 0)),
    (6, "ground", 255, False, (81, 0, 81)),
    (7, "road", 0, False, (128, 64, 128)),
    (8, "sidewalk", 1, False, (244, 35, 232)),
    (9, "parking", 255, False, (250, 170, 160)),
    (10, "rail track", 255, False, (230, 150, 140)),
    (11, "building", 2, False, (70, 70, 70)),
    (12, "wall", 3, False, (102, 102, 156)),
    (13, "fence", 4, False, (190, 153, 153)),
    (14, "guard rail", 255, False, (180, 165, 180)),
    (15, "bridge", 255, False, (150, 100, 100)),
    (16, "tunnel", 255, False, (150, 120, 90)),
    (17, "pole", 5, False, (153, 153, 153)),
    (18, "polegroup", 255, False, (153, 153, 153)),
    (19, "traffic light", 6, False, (250, 170, 30)),
    (20, "traffic sign", 7, False, (220, 220, 0)),
    (21, "vegetation", 8, False, (107, 142, 35)),
    (22, "terrain", 9, False, (152, 251, 152)),
    (23, "sky", 10, False, (70, 130, 180)),
    (24, "person", 11, True, (220, 20, 60)),
    (25, "rider", 12, True, (255, 0, 0)),
    (26, "car", 13, True, (0, 0, 142)),
    (27, "truck", 14, True, (0, 0, 70)),
    (28, "bus", 15, True, (0, 60, 100)),
    (29, "caravan", 255, True, (0, 0, 90)),
    (30, "trailer", 255, True, (0, 0, 110)),
    (31, "train", 16, True, (0, 80, 100)),
    (32, "motorcycle", 17, True, (0, 0, 230)),
    (33, "bicycle", 18, True, (119, 11, 32)),
]


def _cityscapes() -> Vocabulary:
    return Vocabulary(
        "cityscapes",
        [ClassInfo(i, n, c, t, tid) for i, n, tid, t, c in _CITYSCAPES],
    )


# --------------------------------------------------------------------- COCO-Stuff
# COCO-Stuff's 182 names in COCO id order (ids 1..182; stored as id - 1). Ids 1..91 are
# things (11 of them have no annotations in COCO 2017 but keep their slots), 92..182 stuff.
_COCO_STUFF = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
    "street_sign stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra "
    "giraffe hat backpack umbrella shoe eye_glasses handbag tie suitcase frisbee skis snowboard "
    "sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle plate "
    "wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog "
    "pizza donut cake chair couch potted_plant bed mirror dining_table window desk toilet door tv "
    "laptop mouse remote keyboard cell_phone microwave oven toaster sink refrigerator blender book "
    "clock vase scissors teddy_bear hair_drier toothbrush hair_brush "
    "banner blanket branch bridge building-other bush cabinet cage cardboard carpet ceiling-other "
    "ceiling-tile cloth clothes clouds counter cupboard curtain desk-stuff dirt door-stuff fence "
    "floor-marble floor-other floor-stone floor-tile floor-wood flower fog food-other fruit "
    "furniture-other grass gravel ground-other hill house leaves light mat metal mirror-stuff moss "
    "mountain mud napkin net paper pavement pillow plant-other plastic platform playingfield "
    "railing railroad river road rock roof rug salad sand sea shelf sky-other skyscraper snow "
    "solid-other stairs stone straw structural-other table tent textile-other towel tree "
    "vegetable wall-brick wall-concrete wall-other wall-panel wall-stone wall-tile wall-wood "
    "water-other waterdrops window-blind window-other wood"
).split()
COCO_STUFF_NAMES = [n.replace("_", " ") for n in _COCO_STUFF]
assert len(COCO_STUFF_NAMES) == 182


def _coco_stuff() -> Vocabulary:
    return Vocabulary(
        "coco_stuff",
        [ClassInfo(i, n, default_color(i), i < 91) for i, n in enumerate(COCO_STUFF_NAMES)],
    )


# ------------------------------------------------------------------------- ADE20K
# The 150 classes of the SceneParsing benchmark (ids 1..150); 0 is "other".
_ADE20K = (
    "wall|building|sky|floor|tree|ceiling|road|bed|windowpane|grass|cabinet|sidewalk|person|"
    "earth|door|table|mountain|plant|curtain|chair|car|water|painting|sofa|shelf|house|sea|mirror|"
    "rug|field|armchair|seat|fence|desk|rock|wardrobe|lamp|bathtub|railing|cushion|base|box|column|"
    "signboard|chest of drawers|counter|sand|sink|skyscraper|fireplace|refrigerator|grandstand|"
    "path|stairs|runway|case|pool table|pillow|screen door|stairway|river|bridge|bookcase|blind|"
    "coffee table|toilet|flower|book|hill|bench|countertop|stove|palm|kitchen island|computer|"
    "swivel chair|boat|bar|arcade machine|hovel|bus|towel|light|truck|tower|chandelier|awning|"
    "streetlight|booth|television receiver|airplane|dirt track|apparel|pole|land|bannister|"
    "escalator|ottoman|bottle|buffet|poster|stage|van|ship|fountain|conveyer belt|canopy|washer|"
    "plaything|swimming pool|stool|barrel|basket|waterfall|tent|bag|minibike|cradle|oven|ball|"
    "food|step|tank|trade name|microwave|pot|animal|bicycle|lake|dishwasher|screen|blanket|"
    "sculpture|hood|sconce|vase|traffic light|tray|ashcan|fan|pier|crt screen|plate|monitor|"
    "bulletin board|shower|radiator|glass|clock|flag"
).split("|")
assert len(_ADE20K) == 150
_ADE20K_THINGS = {
    "bed", "windowpane", "cabinet", "person", "door", "table", "curtain", "chair", "car",
    "painting", "sofa", "shelf", "mirror", "armchair", "seat", "fence", "desk", "wardrobe", "lamp",
    "bathtub", "railing", "cushion", "box", "column", "signboard", "chest of drawers", "counter",
    "sink", "fireplace", "refrigerator", "stairs", "case", "pool table", "pillow", "screen door",
    "bookcase", "coffee table", "toilet", "flower", "book", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "arcade machine", "bus", "towel",
    "light", "truck", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "apparel", "pole", "bannister", "ottoman", "bottle", "van", "ship", "fountain",
    "washer", "plaything", "stool", "barrel", "basket", "bag", "minibike", "oven", "ball", "step",
    "tank", "trade name", "microwave", "pot", "animal", "bicycle", "dishwasher", "screen",
    "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "plate",
    "monitor", "bulletin board", "radiator", "glass", "clock", "flag",
}


def _ade20k() -> Vocabulary:
    return _simple("ade20k", ["other", *_ADE20K], 0, _ADE20K_THINGS)


# ------------------------------------------------------------------ COCO panoptic
# The 133 categories of COCO panoptic 2017 as (COCO category id, name): 80 things (ids
# 1..90 with gaps) and 53 stuff classes (ids 92..200, several of them "-merged" unions of
# COCO-Stuff classes). The vocabulary stores them contiguously, 0..132 in category-id
# order; ``COCO_PANOPTIC_CATEGORY_IDS[k]`` is the COCO id of class ``k``.
_COCO_PANOPTIC_THINGS = (
    "1 person|2 bicycle|3 car|4 motorcycle|5 airplane|6 bus|7 train|8 truck|9 boat|"
    "10 traffic light|11 fire hydrant|13 stop sign|14 parking meter|15 bench|16 bird|17 cat|"
    "18 dog|19 horse|20 sheep|21 cow|22 elephant|23 bear|24 zebra|25 giraffe|27 backpack|"
    "28 umbrella|31 handbag|32 tie|33 suitcase|34 frisbee|35 skis|36 snowboard|37 sports ball|"
    "38 kite|39 baseball bat|40 baseball glove|41 skateboard|42 surfboard|43 tennis racket|"
    "44 bottle|46 wine glass|47 cup|48 fork|49 knife|50 spoon|51 bowl|52 banana|53 apple|"
    "54 sandwich|55 orange|56 broccoli|57 carrot|58 hot dog|59 pizza|60 donut|61 cake|62 chair|"
    "63 couch|64 potted plant|65 bed|67 dining table|70 toilet|72 tv|73 laptop|74 mouse|"
    "75 remote|76 keyboard|77 cell phone|78 microwave|79 oven|80 toaster|81 sink|"
    "82 refrigerator|84 book|85 clock|86 vase|87 scissors|88 teddy bear|89 hair drier|"
    "90 toothbrush"
)
_COCO_PANOPTIC_STUFF = (
    "92 banner|93 blanket|95 bridge|100 cardboard|107 counter|109 curtain|112 door-stuff|"
    "118 floor-wood|119 flower|122 fruit|125 gravel|128 house|130 light|133 mirror-stuff|"
    "138 net|141 pillow|144 platform|145 playingfield|147 railroad|148 river|149 road|"
    "151 roof|154 sand|155 sea|156 shelf|159 snow|161 stairs|166 tent|168 towel|171 wall-brick|"
    "175 wall-stone|176 wall-tile|177 wall-wood|178 water-other|180 window-blind|"
    "181 window-other|184 tree-merged|185 fence-merged|186 ceiling-merged|187 sky-other-merged|"
    "188 cabinet-merged|189 table-merged|190 floor-other-merged|191 pavement-merged|"
    "192 mountain-merged|193 grass-merged|194 dirt-merged|195 paper-merged|"
    "196 food-other-merged|197 building-other-merged|198 rock-merged|199 wall-other-merged|"
    "200 rug-merged"
)


def _split_categories(text: str) -> list[tuple[int, str]]:
    out = []
    for item in text.split("|"):
        cid, name = item.split(" ", 1)
        out.append((int(cid), name))
    return out


_COCO_PANOPTIC = [(cid, name, True) for cid, name in _split_categories(_COCO_PANOPTIC_THINGS)]
_COCO_PANOPTIC += [(cid, name, False) for cid, name in _split_categories(_COCO_PANOPTIC_STUFF)]
assert len(_COCO_PANOPTIC) == 133
#: COCO panoptic category id of each ``coco_panoptic`` class id (index = class id).
COCO_PANOPTIC_CATEGORY_IDS: tuple[int, ...] = tuple(c for c, _, _ in _COCO_PANOPTIC)


def _coco_panoptic() -> Vocabulary:
    return Vocabulary(
        "coco_panoptic",
        [ClassInfo(i, n, default_color(i), t) for i, (_, n, t) in enumerate(_COCO_PANOPTIC)],
    )


def _cityscapes_trainid() -> Vocabulary:
    return Vocabulary(
        "cityscapes_trainid",
        [ClassInfo(tid, n, c, t, tid) for _, n, tid, t, c in _CITYSCAPES if tid != 255],
    )


#: ToyCity (the built-in procedural street scenes): id, name, Cityscapes display colour,
#: is_thing. The renderer in :mod:`sisgen.sources.toycity` names the same ids.
_TOYCITY = [
    (0, "sky", (70, 130, 180), False),
    (1, "road", (128, 64, 128), False),
    (2, "sidewalk", (244, 35, 232), False),
    (3, "building", (70, 70, 70), False),
    (4, "vegetation", (107, 142, 35), False),
    (5, "terrain", (152, 251, 152), False),
    (6, "pole", (153, 153, 153), False),
    (7, "traffic sign", (220, 220, 0), False),
    (8, "car", (0, 0, 142), True),
    (9, "person", (220, 20, 60), True),
]


def _toycity() -> Vocabulary:
    return Vocabulary("toycity", [ClassInfo(i, n, c, t) for i, n, c, t in _TOYCITY])


_PRESETS = {
    "cityscapes": _cityscapes,
    "coco_stuff": _coco_stuff,
    "coco_panoptic": _coco_panoptic,
    "cityscapes_trainid": _cityscapes_trainid,
    "ade20k": _ade20k,
    "toycity": _toycity,
}


def available_vocabularies() -> list[str]:
    """Names of the built-in vocabularies."""
    return sorted(_PRESETS)


def get_vocabulary(name_or_path: str | os.PathLike | Vocabulary) -> Vocabulary:
    """A preset by name, a custom vocabulary from a JSON/YAML file, or ``Vocabulary`` as is.

    Raises:
        SisgenInputError: Unknown name and no such file.
    """
    if isinstance(name_or_path, Vocabulary):
        return name_or_path
    key = os.fspath(name_or_path)
    if key in _PRESETS:
        return _PRESETS[key]()
    if Path(key).suffix.lower() in (".json", ".yaml", ".yml"):
        return Vocabulary.from_file(key)
    raise SisgenInputError(
        f"unknown vocabulary {key!r}; presets: {', '.join(available_vocabularies())}, or give a "
        ".json/.yaml file"
    )
