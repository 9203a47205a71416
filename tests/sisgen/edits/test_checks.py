"""Typed parameter checks: one normalisation of class lists, one wording for bad values."""

from __future__ import annotations

import numpy as np
import pytest

from sisgen import SisgenInputError, get_vocabulary
from sisgen.edits import Crop, Dilate, Flip, Paste, RemoveInstances, ResampleNoise, SomeOf, Swap
from sisgen.edits.checks import (
    check_bool,
    check_choice,
    check_class,
    check_classes,
    check_int,
    check_number,
    check_number_range,
    check_pair,
    check_probability,
    resolve_class,
    resolve_classes,
)


def test_class_lists_one_normalisation():
    assert check_classes(None, "classes") is None
    assert check_classes("car", "classes") == ["car"]
    assert check_classes(np.int64(26), "classes") == [26]
    assert type(check_classes(np.int64(26), "classes")[0]) is int
    assert check_classes(("car", 24), "classes") == ["car", 24]
    for bad in ([], [True], ["car", 2.5], {"car": 1}, 2.5, True):
        with pytest.raises(SisgenInputError, match=r"^classes must be a list of class names"):
            check_classes(bad, "classes")
    # every edit that takes classes normalises them the same way
    assert RemoveInstances("car").classes == ["car"]
    assert Paste(classes="car", on=np.int64(7)).on == [7]
    for bad in ([], ["car", None]):
        with pytest.raises(SisgenInputError, match="classes must be a list"):
            RemoveInstances(bad)
        with pytest.raises(SisgenInputError, match="on must be a list"):
            Paste(on=bad)


def test_single_class_and_resolution():
    vocab = get_vocabulary("cityscapes")
    assert check_class("car") == "car" and check_class(np.uint8(26)) == 26
    for bad in (None, True, 2.5, ["car"]):
        with pytest.raises(SisgenInputError, match=r"^class must be a class name or an"):
            check_class(bad)
    with pytest.raises(SisgenInputError, match=r"^a must be a class name"):
        Swap(["car"], "person")
    with pytest.raises(SisgenInputError, match=r"^class must be"):
        Dilate(None)
    assert resolve_class(vocab, "car") == 26 and resolve_class(vocab, np.int64(24)) == 24
    assert resolve_class(vocab, "ignore", allow_ignore=True) == 255
    with pytest.raises(SisgenInputError, match="ignore id"):
        resolve_class(vocab, 255)
    assert resolve_classes(vocab, ["person", "car", 26]) == [24, 26]
    assert resolve_classes(vocab, "car") == 26


def test_scalar_checks_share_one_wording():
    assert check_probability("0.5") == 0.5 and check_probability(1) == 1.0
    with pytest.raises(SisgenInputError, match=r"^p must be a number in \[0, 1\], got 'x'$"):
        check_probability("x")
    with pytest.raises(SisgenInputError, match=r"^fraction must be in \[0, 1\], got 1.5$"):
        check_probability(1.5, "fraction")
    assert check_int(np.int32(3), "count") == 3 and type(check_int(np.int32(3), "count")) is int
    for value, kwargs, message in [
        (-1, {}, "count must be a non-negative integer, got -1"),
        (True, {}, "count must be a non-negative integer, got True"),
        (0, {"minimum": 1}, "count must be a positive integer, got 0"),
        (5, {"maximum": 4}, "count must be an integer from 0 to 4, got 5"),
        (1.0, {"minimum": 2}, "count must be an integer >= 2, got 1.0"),
    ]:
        with pytest.raises(SisgenInputError) as e:
            check_int(value, "count", **kwargs)
        assert e.value.problem == message
    assert check_number(np.float32(0.5), "f", lambda v: v > 0, "a number > 0") == 0.5
    with pytest.raises(SisgenInputError, match=r"^f must be a number > 0, got -1$"):
        check_number(-1, "f", lambda v: v > 0, "a number > 0")
    assert check_bool(False, "flag") is False
    with pytest.raises(SisgenInputError, match=r"^flag must be true or false, got 1$"):
        check_bool(1, "flag")
    assert check_choice("b", "mode", ("a", "b")) == "b"
    with pytest.raises(SisgenInputError, match=r"^mode must be one of 'a', 'b', got 'c'$"):
        check_choice("c", "mode", ("a", "b"))
    assert check_pair(3, "size") == (3, 3) and check_pair([2, np.int64(4)], "size") == (2, 4)
    with pytest.raises(SisgenInputError, match=r"^size must be \[h, w\], two positive"):
        check_pair([0, 4], "size")
    assert check_number_range([1, 3], "range", integer=True) == (1, 3)
    assert check_number_range([0.5, 2], "scale", positive=True) == (0.5, 2.0)
    with pytest.raises(SisgenInputError, match=r"^scale must be \[lo, hi\], numbers > 0"):
        check_number_range([0, 2], "scale", positive=True)


@pytest.mark.parametrize("make, message", [
    (lambda: Flip("diagonal"), "direction must be one of 'horizontal', 'vertical'"),
    (lambda: Crop([4, 4], position="middle"), "position must be one of 'random', 'center'"),
    (lambda: Paste(occlusion="under"), "occlusion must be one of 'front', 'behind'"),
    (lambda: Paste(perspective="yes"), "perspective must be true or false"),
    (lambda: Paste(horizon=1.0), r"horizon must be a fraction in \[0, 1\)"),
    (lambda: Paste(tries=0), "tries must be a positive integer"),
    (lambda: Dilate("car", pixels=-1), "pixels must be a non-negative integer"),
    (lambda: Dilate("car", over_things=1), "over_things must be true or false"),
    (lambda: ResampleNoise(instance=0), "instance must be a positive instance id or 'random'"),
    (lambda: SomeOf([{"op": "hflip"}], n=2), r"n must be an integer from 0 to 1 \(the number"),
    (lambda: RemoveInstances(fraction="half"), r"fraction must be a number in \[0, 1\]"),
])
def test_edits_use_the_shared_checks(make, message):
    with pytest.raises(SisgenInputError, match=message):
        make()
