"""The sequential confirmation's keys through the real CLI entry: a bad margin, a budget below the
minimum, a margin for an objective that is not confirmed, a head-to-head pair that is not two
families and the replaced `confirm.seeds` are one
line on stderr, exit status 2, before Ray starts and before anything is written."""

from __future__ import annotations

import pytest
import ray

import search.driver
from search.config import load_config
from search.run import main

CASES = {
    "negative margin": (
        ["confirm.delta.val_macro_f1=-0.01"],
        "confirm.delta.val_macro_f1: expected a number >= 0, got -0.01",
    ),
    "non-numeric margin": (["confirm.delta.val_ece=abc"], "confirm.delta.val_ece: Value 'abc'"),
    "margin of no objective": (
        ["confirm.delta.val_accuracy=0.02"],
        "confirm.delta.val_accuracy: not a confirmed objective; expected one of "
        "['val_ece', 'val_macro_f1', 'val_worst_recall']",
    ),
    "budget below the minimum": (
        ["confirm.min_seeds=5", "confirm.max_seeds=4"],
        "confirm.max_seeds: expected 0 (no confirmation) or a budget >= confirm.min_seeds (5), "
        "got 4",
    ),
    "no minimum": (["confirm.min_seeds=0"], "confirm.min_seeds: expected a value >= 1, got 0"),
    "versus of an unknown family": (
        ["confirm.versus=[elf:nope]"],
        "confirm.versus: 'elf:nope': expected a:b, two different families of [",
    ),
    "versus of one family": (
        ["confirm.versus=[elf:elf]"],
        "confirm.versus: 'elf:elf': expected a:b, two different families of [",
    ),
    "versus without a colon": (
        ["confirm.versus=[elf]"],
        "confirm.versus: 'elf': expected a:b, two different families of [",
    ),
    "replaced key": (
        ["confirm.seeds=3"],
        "confirm.seeds was replaced by confirm.min_seeds and confirm.max_seeds",
    ),
}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A clean working directory and a tripwire instead of Ray."""

    def tripwire(*args, **kwargs):
        raise AssertionError("Ray was started for bad input")

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(search.driver, "connect", tripwire)
    return tmp_path


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_confirmation_keys_are_one_line_exit_2(name, isolated, capsys):
    args, expected = CASES[name]
    out = isolated / "out"
    code = main([*args, f"output_dir={out}"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert captured.out == "" and not ray.is_initialized() and not out.exists()
    assert list((isolated / "cwd").iterdir()) == []


def test_margins_by_either_name_and_the_stage_off():
    cfg = load_config(["confirm.delta.test_ece=0.02", "confirm.delta.val_macro_f1=0"])
    assert cfg.confirm.delta == {"test_ece": 0.02, "val_macro_f1": 0.0}
    assert load_config(["confirm.max_seeds=0"]).confirm.max_seeds == 0  # below the minimum: off
    margin = load_config(["search.metric=val_accuracy", "confirm.delta.val_accuracy=0.02"])
    assert margin.confirm.delta == {"val_accuracy": 0.02}  # search.metric is confirmed too
