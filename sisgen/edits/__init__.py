"""Seeded, composable edits of label maps, described as data.

An edit recipe is a list of steps, each a mapping with an ``op`` and its parameters, kept in
YAML so that a run is reproducible from its manifest::

    edits:
      - {op: swap, a: car, b: person, p: 0.5}
      - {op: relabel, mapping: {grass: vegetation}}
      - {op: remove_instances, classes: [person], fraction: 0.5}
      - {op: hflip, p: 0.5}                       # = {op: flip, direction: horizontal}
      - {op: flip, direction: vertical}           # horizontal | vertical
      - {op: scale, range: [0.75, 1.25]}          # or factor: 1.5 (nearest neighbour)
      - {op: crop, size: [512, 1024], position: random}   # random | center
      - {op: pad, to_multiple: 32, position: center}      # or size: [h, w];
                                                          # center | random | topleft
      - {op: dilate, class: pole, pixels: 2}      # over_things: true to grow over things
      - {op: erode, class: person, pixels: 1}
      - {op: paste, classes: [car, person], range: [1, 4], scale: [0.8, 1.2],
         perspective: true, horizon: 0.4, on: [road, sidewalk], occlusion: behind,
         bank: banks/cityscapes_things.npz}       # bank optional, see below
      - {op: resample_noise, class: car, instance: random}  # or region: [y0, x0, y1, x1]
      - one_of: [{op: hflip}, {op: scale, factor: 0.5}]      # exactly one ...
        weights: [3, 1]                                     # ... optionally weighted
      - some_of: {n: 2, steps: [{op: hflip}, {op: erode, class: road}, {op: crop,
                                size: [256, 256]}]}         # n distinct, random order

``one_of`` / ``some_of`` may also be written ``{op: one_of, steps: [...], weights: [...]}``
and ``{op: some_of, n: 2, steps: [...]}`` (the form :meth:`Recipe.to_list` returns); they
nest. Every edit takes ``p``, the probability that it fires (default 1); a step chosen by
``one_of`` / ``some_of`` still flips its own ``p`` coin. A :class:`Recipe` applies its
steps in order with one ``np.random.default_rng(seed)`` and records each step's resolved
parameters (class names turned into ids), whether it fired and what it chose (removed
instance ids, crop offsets, scale factors, pasted instances, the chosen sub-steps with
their own records) in ``meta["edits"]`` of the map it returns. Edits never mutate their
input.

Geometric edits (flip, scale, crop, pad) change the map's size or layout; they move
``meta["noise_mask"]`` (written by ``resample_noise``) exactly like the labels, padding it
with ``False``. The pipeline edits at the source resolution and resizes to the model's
afterwards.

Instance bank for ``paste``: a step with ``bank: file.npz`` (relative paths are looked up
next to the recipe file, then in the working directory) loads it once per process, when
first used or ahead of a run with :meth:`Recipe.load_banks` (:meth:`Recipe.validate` only
resolves class names and reads no file); otherwise the bank comes from the run's context,
``recipe(lm, seed, vocab, context={"bank": InstanceBank or path})``.
:meth:`Recipe.needs_bank` tells whether a context bank is needed. See
:mod:`sisgen.instance_bank`.

Random draws: each step first draws one uniform number for its ``p`` coin (always, even when
``p`` is 0 or 1, so the stream does not depend on ``p``'s value); a step that needs more
randomness (``remove_instances``, random crop/pad positions, scale ranges, ``paste``,
``resample_noise`` with ``instance: random``, the choices of ``one_of`` / ``some_of``)
draws it only when it fires.

New edits subclass :class:`Edit`, store their constructor arguments as attributes of the
same names (see :meth:`Edit.params`) and register with :func:`register_edit`.

Modules: :mod:`~sisgen.edits.base` (the protocol, registry and :func:`build_edit`),
:mod:`~sisgen.edits.checks` (parameter checks), :mod:`~sisgen.edits.label`,
:mod:`~sisgen.edits.geometric`, :mod:`~sisgen.edits.noise`, :mod:`~sisgen.edits.paste`,
:mod:`~sisgen.edits.composite`, :mod:`~sisgen.edits.recipe` and
:mod:`~sisgen.edits.photo` (photo editing: source-pixel tracking, aligned photo and hole).
The scene editor's tools are edits too: :mod:`~sisgen.edits.paint` (``stroke``, ``fill``,
``flood_fill``, ``canvas``) and :mod:`~sisgen.edits.instance_ops` (``delete_instance``,
``move_instance``, ``scale_instance``, ``flip_instance``, ``relabel_instance``,
``paste_item``).
"""

from ..labelmap import HOLE_KEY, NOISE_MASK_KEY, PHOTO_KEY, SOURCE_PIXEL_KEY
from .base import Edit, available_edits, build_edit, edit_class, register_edit
from .composite import OneOf, SomeOf
from .geometric import Crop, Flip, HFlip, Pad, Scale
from .instance_ops import (
    DeleteInstance,
    FlipInstance,
    MoveInstance,
    PasteItem,
    RelabelInstance,
    ScaleInstance,
)
from .label import Dilate, Erode, Relabel, RemoveInstances, Swap
from .noise import ResampleNoise
from .paint import Canvas, Fill, FloodFill, Stroke
from .paste import Paste
from .photo import attach_photo, track_source_pixels
from .recipe import Recipe

__all__ = [
    "HOLE_KEY",
    "NOISE_MASK_KEY",
    "PHOTO_KEY",
    "SOURCE_PIXEL_KEY",
    "Canvas",
    "Crop",
    "DeleteInstance",
    "Dilate",
    "Edit",
    "Erode",
    "Fill",
    "Flip",
    "FlipInstance",
    "FloodFill",
    "HFlip",
    "MoveInstance",
    "OneOf",
    "Pad",
    "Paste",
    "PasteItem",
    "Recipe",
    "Relabel",
    "RelabelInstance",
    "RemoveInstances",
    "ResampleNoise",
    "Scale",
    "ScaleInstance",
    "SomeOf",
    "Stroke",
    "Swap",
    "attach_photo",
    "available_edits",
    "edit_class",
    "build_edit",
    "register_edit",
    "track_source_pixels",
]
