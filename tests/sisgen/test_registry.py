"""The one registry helper: names, the error wording, duplicates, the name attribute."""

from __future__ import annotations

import pytest

from sisgen.errors import SisgenInputError
from sisgen.registry import Registry


def test_registry_names_errors_and_attribute():
    things = Registry("thing kind")

    @things.register("b", attr="kind")
    class B:
        pass

    things.add("a", int)
    assert things.names() == ["a", "b"] and "b" in things and len(things) == 2
    assert things.get("b") is B and B.kind == "b"
    with pytest.raises(SisgenInputError, match="unknown thing kind 'c'; known: a, b"):
        things.get("c")
    with pytest.raises(ValueError, match="registered twice"):
        things.add("a", float)
