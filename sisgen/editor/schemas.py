"""Request bodies of the editor's API, as pydantic models.

They bound every size (points per stroke, coordinates, name lengths) and reject unknown
fields, so a malformed request is a 422 before it reaches the library; the library's edits
then check what only the open map knows (classes of its vocabulary, coordinates inside it)
and the app turns their :class:`~sisgen.errors.SisgenInputError` into a 422 as well.
Edit steps are a union discriminated by ``op``, with the fields of the edit library's ops
(``class`` as in a recipe).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..edits.paint import MAX_POINTS

#: Largest pixel coordinate a request may name (maps are far smaller; this bounds the JSON).
MAX_COORD = 65_535

Coord = Annotated[int, Field(ge=0, le=MAX_COORD)]
Point = Annotated[list[Coord], Field(min_length=2, max_length=2, description="[y, x]")]
Box = Annotated[list[Coord], Field(min_length=4, max_length=4,
                                   description="[y0, x0, y1, x1], end exclusive")]
ClassKey = Annotated[int | str, Field(description="class name or id")]
InstanceId = Annotated[int, Field(ge=1, le=2**31 - 1)]
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Step(_Body):
    def to_step(self) -> dict[str, Any]:
        """The step in its recipe form (``class``, not ``class_``; unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class StrokeStep(_Step):
    """A brush stroke (edit op ``stroke``)."""

    op: Literal["stroke"]
    class_: ClassKey = Field(alias="class")
    points: list[Point] = Field(min_length=1, max_length=MAX_POINTS)
    radius: float = Field(1.0, ge=0.5, le=1000)
    instance: Literal["new"] | InstanceId = "new"


class FillStep(_Step):
    """A polygon or box fill (edit op ``fill``)."""

    op: Literal["fill"]
    class_: ClassKey = Field(alias="class")
    polygon: list[Point] | None = Field(None, min_length=3, max_length=MAX_POINTS)
    box: Box | None = None
    instance: Literal["new"] | InstanceId = "new"

    @model_validator(mode="after")
    def _one_shape(self) -> FillStep:
        if (self.polygon is None) == (self.box is None):
            raise ValueError("give either polygon or box")
        return self


class FloodFillStep(_Step):
    """A flood fill (edit op ``flood_fill``)."""

    op: Literal["flood_fill"]
    class_: ClassKey = Field(alias="class")
    at: Point
    connectivity: Literal[4, 8] = 4
    instance: Literal["new"] | InstanceId = "new"


class DeleteInstanceStep(_Step):
    """Delete the selected instance (edit op ``delete_instance``)."""

    op: Literal["delete_instance"]
    instance: InstanceId


class MoveInstanceStep(_Step):
    """Move the selected instance (edit op ``move_instance``)."""

    op: Literal["move_instance"]
    instance: InstanceId
    by: Annotated[list[Annotated[int, Field(ge=-MAX_COORD, le=MAX_COORD)]],
                  Field(min_length=2, max_length=2, description="[dy, dx]")]


class ScaleInstanceStep(_Step):
    """Scale the selected instance about its foot (edit op ``scale_instance``)."""

    op: Literal["scale_instance"]
    instance: InstanceId
    factor: float = Field(ge=0.05, le=20)


class FlipInstanceStep(_Step):
    """Mirror the selected instance (edit op ``flip_instance``)."""

    op: Literal["flip_instance"]
    instance: InstanceId
    direction: Literal["horizontal", "vertical"] = "horizontal"


class RelabelInstanceStep(_Step):
    """Change the class of the selected instance (edit op ``relabel_instance``)."""

    op: Literal["relabel_instance"]
    instance: InstanceId
    class_: ClassKey = Field(alias="class")


class PasteItemStep(_Step):
    """Paste one instance-bank item (edit op ``paste_item``)."""

    op: Literal["paste_item"]
    item: Annotated[int, Field(ge=0, le=10_000_000)]
    at: Point
    scale: float = Field(1.0, ge=0.05, le=20)
    occlusion: Literal["front", "behind"] = "front"


EditStep = Annotated[
    StrokeStep | FillStep | FloodFillStep | DeleteInstanceStep | MoveInstanceStep
    | ScaleInstanceStep | FlipInstanceStep | RelabelInstanceStep | PasteItemStep,
    Field(discriminator="op"),
]

#: Ops whose ``instance`` must already be in the map (a clear 404 when it is not).
INSTANCE_OPS = frozenset({"delete_instance", "move_instance", "scale_instance",
                          "flip_instance", "relabel_instance"})


class OpenMap(_Body):
    """Open a source map by position or by id."""

    index: Annotated[int, Field(ge=0)] | None = None
    id: Annotated[str, Field(min_length=1, max_length=300)] | None = None

    @model_validator(mode="after")
    def _one_key(self) -> OpenMap:
        if (self.index is None) == (self.id is None):
            raise ValueError("give either index or id")
        return self


class Blank(_Body):
    """Start from a blank canvas of the model's size, filled with one class."""

    class_: ClassKey = Field(alias="class")


class Select(_Body):
    """A pixel of the label map."""

    y: Coord
    x: Coord


class SetSeed(_Body):
    """A run seed (``null``: draw a new one)."""

    seed: Seed | None = None


class Restyle(_Body):
    """Restyle an instance or a box of pixels."""

    instance: InstanceId | None = None
    box: Box | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Restyle:
        if (self.instance is None) == (self.box is None):
            raise ValueError("give either instance or box")
        return self


SampleName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,119}$")]


class Save(_Body):
    """Save the scene (optionally under a given sample name)."""

    name: SampleName | None = None


class OpenSaved(_Body):
    """Reopen a saved scene."""

    name: SampleName
