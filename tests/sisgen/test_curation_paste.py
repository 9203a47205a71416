"""Class balancing by pasting: ``paste_balance_recipe`` and ``sisgen curate paste``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sisgen import sources
from sisgen.cli import main
from sisgen.curation import paste_balance_recipe
from sisgen.edits import Recipe
from sisgen.errors import SisgenInputError
from sisgen.instance_bank import InstanceBank


@pytest.fixture(scope="module")
def city():
    return sources.open("toycity", split="train", size=(64, 128), length=60)


@pytest.fixture(scope="module")
def bank(city):
    return InstanceBank.from_source(city, min_pixels=16)


def test_rare_bank_classes_get_paste_steps_and_gain_share(city, bank):
    recipe, report = paste_balance_recipe(city, bank, on=["road", "sidewalk"], max_per_map=3)
    share = report["pixel_share"]
    pasted = {step["classes"][0] for step in recipe.to_list()}
    held = {city.vocabulary.names[city.vocabulary.ids.index(c)] for c in bank.classes()}
    below = {n for n in share["source"] if share["target"][n] > share["source"][n]}
    assert pasted and pasted <= held & below
    for name in pasted:
        assert share["after"][name] > share["source"][name]  # measured, not estimated
        entry = report["classes"][name]
        assert 0 < entry["per_map"] <= 3 and entry["pixels_per_paste"] > 0
    for name in below - held:  # e.g. traffic signs: no instances to paste
        assert report["classes"][name]["skipped"] == "not in the bank"
    assert abs(sum(share["after"].values()) - 1) < 1e-3
    for step in recipe.to_list():
        assert step["op"] == "paste" and step["on"] == ["road", "sidewalk"]
        assert 1 <= step["count"] <= 3 and 0 < step.get("p", 1.0) <= 1
    # the recipe edits maps like any other: deterministic per seed, classes added
    lm = city.load(0)
    a = recipe(lm, 7, city.vocabulary, {"bank": bank})
    b = recipe(lm, 7, city.vocabulary, {"bank": bank})
    assert np.array_equal(a.semantic, b.semantic)


def test_a_class_already_above_target_gets_no_step(city, bank):
    recipe, report = paste_balance_recipe(city, bank, target="sqrt", limit=20)
    share = report["pixel_share"]
    for step in recipe.to_list():
        name = step["classes"][0]
        assert share["target"][name] > share["source"][name]


def test_bad_settings_and_a_bank_of_another_vocabulary(city, bank, tmp_path):
    with pytest.raises(SisgenInputError, match="max_per_map"):
        paste_balance_recipe(city, bank, max_per_map=0)
    other = InstanceBank(list(bank)[:3], vocabulary="cityscapes")
    with pytest.raises(SisgenInputError, match="cityscapes"):
        paste_balance_recipe(city, other, bank_file=str(tmp_path / "b.npz"))


def test_cli_writes_a_recipe_generate_reads(city, bank, tmp_path, capsys):
    bank_file = tmp_path / "bank.npz"
    bank.save(bank_file)
    out, report = tmp_path / "paste.yaml", tmp_path / "report.json"
    assert main(["curate", "paste", "--source", "toycity", "--limit", "40", "--out", str(out),
                 "--report", str(report), "--bank", str(bank_file), "--on", "road,sidewalk",
                 "--max-per-map", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    recipe = Recipe.load(out)
    assert recipe.to_list() == printed["steps"] and len(recipe) >= 1
    assert all(step["bank"] == str(bank_file) for step in recipe.to_list())
    recipe.validate(city.vocabulary)
    recipe.load_banks()
    assert json.loads(report.read_text())["pixel_share"]["after"]
