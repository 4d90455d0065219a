"""The worked examples of docs/development.md run: "Add a data preset" (a preset module registered
from a temporary file builds its Dataset, takes its data.* options and shows in --help) and "Add a
stage" (the stage list of the page runs after a small search, in order)."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
from helpers import SMALL

import search.stages
from search.config import load_config
from search.outputs import Outcome
from search.run import main
from search.stages import STAGES, Stage, StageContext, run_stages
from spaces import load_space
from trainables.data.presets import PRESETS, build_dataset
from trainables.errors import UserInputError

PAGE = Path(__file__).resolve().parents[1] / "docs" / "development.md"


def examples(heading: str) -> list[str]:
    """The ```python blocks of the page's section `heading`, in order."""
    section = PAGE.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture
def blobs(tmp_path, monkeypatch):
    """The page's preset module, imported from a temporary folder; the registry as it was after."""
    (module,) = examples("Add a data preset")
    (tmp_path / "blobs_preset.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = dict(PRESETS)
    importlib.import_module("blobs_preset")
    yield
    PRESETS.clear()
    PRESETS.update(saved)
    sys.modules.pop("blobs_preset", None)


def test_a_preset_module_registers_builds_and_shows_in_help(blobs, capsys):
    assert list(PRESETS)[-1] == "blobs"
    data = build_dataset(
        "blobs", {"data.rows": "50", "gap": 3}
    )  # lax types, as on the command line
    assert data.meta["preset"] == "blobs" and data.classes == ("left", "right")
    assert [len(s.y) for s in (data.train, data.val, data.test)] == [50, 50, 50]
    assert data.train.x.shape == (50, 4) and data.num_classes == 2
    with pytest.raises(UserInputError, match=r"data\.rows: expected an integer, got 'many'"):
        build_dataset("blobs", {"rows": "many"})
    with pytest.raises(UserInputError, match=r"data\.gaps: unknown option.*gap"):
        build_dataset("blobs", {"gaps": 1.0})
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "blobs: two Gaussian blobs, one per class (an example)" in out
    assert re.search(r"data\.gap +a number, default 2\.0", out)


def test_a_preset_name_is_registered_once(blobs):
    from trainables.data.presets import register

    with pytest.raises(ValueError, match="'blobs' is registered twice"):
        register("blobs", PRESETS["blobs"])


def page_stages() -> tuple[Stage, ...]:
    """The page's stage function and its STAGES tuple, read in search/stages.py's namespace."""
    function, entries = examples("Add a stage")
    namespace = dict(vars(search.stages))
    exec(compile(function + entries, str(PAGE), "exec"), namespace)
    return namespace["STAGES"]


def test_the_stage_list_is_the_confirmation_then_the_report():
    assert [s.name for s in STAGES] == ["confirmation", "report"]
    listed = page_stages()
    assert [s.name for s in listed] == ["confirmation", "report", "counts"]
    assert listed[:2] == STAGES  # the page's list is today's plus one entry


def test_the_stage_loop_runs_each_stage_in_order_on_one_context(tmp_path, monkeypatch):
    ran: list[str] = []
    stages = tuple(Stage(s.name, lambda c, n=s.name: ran.append(n)) for s in STAGES)
    monkeypatch.setattr(search.stages, "STAGES", (*stages, page_stages()[-1]))  # read when called
    outcome = Outcome(output_dir=tmp_path, counts={"completed": 3, "failed": 1}, best=[])
    run_stages(StageContext(None, tmp_path, None, None, None, outcome))  # type: ignore[arg-type]
    assert ran == ["confirmation", "report"]
    assert json.loads((tmp_path / "counts.json").read_text()) == {"completed": 3, "failed": 1}


@pytest.mark.slow
def test_an_added_stage_runs_after_a_small_search(ray_local, tmp_path, monkeypatch):
    from search.driver import run

    monkeypatch.setattr(search.stages, "STAGES", page_stages())
    cfg = load_config(
        [
            "space=elf",
            f"output_dir={tmp_path / 'out'}",
            "search.num_samples=2",
            "train.max_epochs=2",
            "scheduler=fifo",
            "mlflow.enabled=false",
            "confirm.max_seeds=0",
            *(f"data.{k}={v}" for k, v in SMALL.items()),
        ]
    )
    outcome = run(cfg, load_space(cfg.space))
    assert outcome.counts == {"completed": 2} and not outcome.interrupted
    assert outcome.report_dir is not None  # the stages before it ran
    written = json.loads((outcome.output_dir / "counts.json").read_text())
    assert written == outcome.counts
