"""Trial keys on the command line: `train.lr=0.01` pins a key for every trial, a distribution
replaces the space's entry; search keys and trial keys never collide; with every key pinned the
search is one trial. Bad pins are cases of test_bad_input.py (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import sys

import pytest
from helpers import SMALL, read_record

from search.config import SET_FOR_TRIALS, known_keys, load_config, parse_overrides, trial_keys
from search.outputs import prepare_output
from search.run import main, resolve
from spaces import list_spaces, load_space
from spaces.distributions import Choice, Constant, LogUniform
from spaces.fit import fit_to_data, for_tasks
from spaces.pins import pin
from spaces.schema import to_text
from trainables.canonical import DataFacts
from trainables.params import PARAMS

USER_MODEL = "examples.user_model:factory"  # declares model.width and model.blocks
ELF_KEYS = ("elf.granularity", "elf.missing", "elf.clip_max", "elf.batch_norm", "elf.warmup_frac")
ONE_CONFIG = ["space=focal", "loss.kind=focal", "loss.gamma=2.0", "loss.alpha=inverse_frequency"]


def _no_ray() -> bool:
    return "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


# ---------------------------------------------------------------- the two registries


def test_search_keys_and_trial_keys_never_collide(tmp_path):
    """Every key of both registries (a plug-in's too) is one kind: the trial keys the search config
    sets for every trial are search keys, exactly those tune.run passes to every trial."""
    from search.tuner import tune_parts

    load_config([f"model={USER_MODEL}", "model.width=8"])  # registers the plug-in's keys
    search, trial = set(known_keys()), set(trial_keys())
    assert {"model.width", "model.blocks", "train.lr"} <= trial
    assert not search & trial
    assert set(PARAMS) == trial | set(SET_FOR_TRIALS) and set(SET_FOR_TRIALS) <= search
    for key in sorted(search | set(PARAMS)):
        overrides, others = parse_overrides([f"{key}=1"])
        assert (key in trial) == (key in others) and (key in search) == bool(overrides), key
    cfg = load_config([f"output_dir={tmp_path}"])
    assert set(tune_parts(cfg, load_space("elf"), 2, 0).param_space) == set(SET_FOR_TRIALS)


def test_train_max_epochs_stays_a_search_key():
    cfg = load_config(["train.max_epochs=3", "train.lr=0.01"])
    assert cfg.train.max_epochs == 3 and cfg.params == {"train.lr": 0.01}


# ---------------------------------------------------------------- folding pins into a space


def test_a_pinned_key_leaves_the_space_on_the_optuna_and_the_grid_path(tmp_path):
    """train.lr=0.01 is a constant of every trial: the Optuna searcher tune.run gets suggests it
    with every config, and the grid path's param_space holds it."""
    from search.tuner import tune_parts

    args = ["train.lr=0.01", "mlflow.enabled=false"]
    (tmp_path / "elf").mkdir()  # prepare_output's folder, where the study's journal goes
    (tmp_path / "grid").mkdir()
    cfg, space = resolve(["space=elf", f"output_dir={tmp_path / 'elf'}", *args], {})
    assert space.params["train.lr"].dist == Constant(0.01) and "train.lr" not in space.searched
    assert [p.get("train.lr") for p in space.points_to_evaluate] == [None, None]
    searcher = tune_parts(cfg, space, 2, 0).run_args["search_alg"].searcher
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    assert [c["train.lr"] for c in configs] == [0.01] * 4
    assert configs[0]["elf.strategy"] == "none"  # the space's first point, less its train.lr
    cfg, grid = resolve(["space=baseline", f"output_dir={tmp_path / 'grid'}", *args], {})
    param_space = tune_parts(cfg, grid, 2, 0).param_space
    assert param_space["train.lr"] == 0.01
    assert param_space["seed"] == {"grid_search": [0, 1, 2, 3, 4]}


def test_a_value_that_deactivates_children_takes_them_out():
    space = pin(load_space("elf"), {"elf.strategy": "none"})
    assert space.params["elf.strategy"].dist == Constant("none")
    assert not set(ELF_KEYS) & set(space.params) and space.searched == ("train.lr",)
    assert space.points_to_evaluate == ({"train.lr": 0.003},)  # both points, the same now
    (note,) = space.notes
    assert note.startswith("pinned on the command line for every trial: elf.strategy=none (was ")
    assert f"not searched: {', '.join(ELF_KEYS)}; space elf searches train.lr" in note


def test_a_value_that_activates_children_keeps_them_under_it():
    space = pin(load_space("elf"), {"elf.strategy": "aco"})
    assert all(space.params[k].when == (("elf.strategy", ("aco",)),) for k in ELF_KEYS)
    assert space.points_to_evaluate[0] == {"train.lr": 0.003}  # the none point lost its strategy


def test_a_distribution_replaces_the_entry_and_narrows_its_conditions():
    pins = {"elf.strategy": {"choice": ["none", "rso"]}, "train.lr": {"loguniform": ["1e-4", 0.01]}}
    space = pin(load_space("elf"), pins)
    assert space.params["elf.strategy"].dist == Choice(("none", "rso"))
    assert space.params["train.lr"].dist == LogUniform(1e-4, 0.01)
    assert all(space.params[k].when == (("elf.strategy", ("rso",)),) for k in ELF_KEYS)
    none, aco = space.points_to_evaluate  # aco's point keeps what does not depend on aco
    assert none == {"elf.strategy": "none", "train.lr": 0.003} and aco == {"train.lr": 0.003}


def test_a_key_the_space_lacks_joins_it_as_a_constant():
    pins = {"train.batch_size": 512, "loss.alpha": [0.1, 0.2, 0.3, 0.2, 0.2]}
    cfg, space = resolve(
        ["space=elf", "train.batch_size=512", "loss.alpha=[0.1,0.2,0.3,0.2,0.2]"], {}
    )
    assert cfg.params == pins
    assert space.params["train.batch_size"].dist == Constant(512)
    assert space.params["loss.alpha"].dist == Constant((0.1, 0.2, 0.3, 0.2, 0.2))
    assert "(not in the space)" in space.notes[0]


def test_a_task_key_pins_the_loss_of_every_task():
    space = pin(load_space("multitask"), {"loss.<task>.kind": "focal", "loss.<task>.gamma": 1.5})
    per_task = for_tasks(space, ("level", "area"))
    for task in ("level", "area"):
        assert per_task.params[f"loss.{task}.kind"].dist == Constant("focal")
        assert per_task.params[f"loss.{task}.gamma"].dist == Constant(1.5)
        assert per_task.params[f"loss.{task}.alpha"].dist.finite == (None, "inverse_frequency")
    single = for_tasks(pin(load_space("multitask"), {"loss.<task>.kind": "ce"}), ())
    assert single.params["loss.kind"].dist == Constant("ce") and "loss.gamma" not in single.params


def test_a_plugin_key_is_pinned_like_a_built_in_one():
    cfg, space = resolve([f"model={USER_MODEL}", "model.width=8", "mlflow.enabled=false"], {})
    assert cfg.params == {"model.width": 8} and space.params["model.width"].dist == Constant(8)


# ---------------------------------------------------------------- through the command line


def test_dry_run_prints_the_pinned_space_and_says_so_once(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["space=elf", "train.lr=0.01", "dry_run=true"]) == 0
    out = capsys.readouterr().out
    assert "params:\n  train.lr: 0.01\n" in out  # the config
    assert "  train.lr         = 0.01\n" in out  # the space
    assert out.count("pinned on the command line for every trial: train.lr=0.01") == 1
    assert list(tmp_path.iterdir()) == [] and _no_ray()


def test_help_shows_trial_keys_and_how_to_pin_them(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "trial keys: pin one for every trial (train.lr=0.01)" in out
    assert "'train.lr={loguniform: [1e-4, 1e-2]}'" in out and "the quickest way" in out
    assert "train.lr                 default: 0.003  Learning rate." in out
    assert "model.width" not in out  # a plug-in's keys: only once it is loaded


def test_every_key_pinned_is_one_trial(tmp_path):
    from search.tuner import tune_parts

    argv = [*ONE_CONFIG, "search.num_samples=2", f"output_dir={tmp_path}", "mlflow.enabled=false"]
    cfg, space = resolve(argv, {})
    assert space.searched == () and cfg.search.num_samples == 1
    assert space.notes[-1] == (
        "search.num_samples is 1 (not 2): every trial would train the same configuration"
    )
    assert "nothing is left to search: one configuration" in space.notes[0]
    assert tune_parts(cfg, space, 2, 0).run_args["num_samples"] == 1


@pytest.mark.parametrize("name", list_spaces())
def test_a_space_written_back_reads_as_itself(name, tmp_path):
    """to_text (space.yaml of a search with pins) round-trips every shipped space, pinned too."""
    pins = {"train.lr": 0.01, "loss.alpha": [0.1, 0.2, 0.3, 0.2, 0.2]}
    for space in (load_space(name), pin(load_space(name), pins)):
        (tmp_path / "s.yaml").write_text(to_text(space, "written back"))
        back = load_space(str(tmp_path / "s.yaml"))
        assert (back.params, back.points_to_evaluate) == (space.params, space.points_to_evaluate)


def test_the_saved_space_is_the_one_searched(tmp_path):
    """With pins, space.yaml is the pinned space: the report does not take a pinned key for a
    searched one."""
    from reports.searched import read_space

    out = tmp_path / "out"
    cfg, space = resolve([f"output_dir={out}", "train.lr=0.01", "mlflow.enabled=false"], {})
    prepare_output(cfg, space)
    assert load_space(str(out / "space.yaml")).params == space.params
    assert "train.lr" not in {p.key for p in read_space(out / "space.yaml")}
    assert "train.lr: 0.01" in (out / "config.yaml").read_text()


def test_resume_keeps_the_pins_and_refuses_other_ones(tmp_path, capsys):
    out = tmp_path / "out"
    cfg, space = resolve([f"output_dir={out}", "train.lr=0.01", "mlflow.enabled=false"], {})
    prepare_output(cfg, space)
    resumed, again = resolve([f"resume={out}"], {})
    assert resumed.params == {"train.lr": 0.01} and again.params == space.params
    assert main([f"resume={out}", "train.lr=0.02"]) == 2
    assert "train.lr cannot change on resume (saved 0.01, given 0.02)" in capsys.readouterr().err
    assert main([f"resume={out}", "train.batch_size=512"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "train.batch_size cannot change on resume (saved not set, given 512)" in err


def test_a_plugin_key_that_is_a_search_key_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "clash_model.py").write_text(
        "from examples.user_model import factory as _f\n"
        "from trainables.params import Param\n\n\n"
        "def factory(inputs, params):\n    return _f(inputs, params)\n\n\n"
        'factory.params = [Param("model.mode", "x", "text", "Clashes with a search key.")]\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    assert main(["model=clash_model:factory", f"output_dir={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: trial key 'model.mode', declared by a model= or trainable= plug-in, is also a "
        "search key; rename it in the plug-in's params"
    )
    assert not out.exists() and _no_ray()


# ---------------------------------------------------------------- the data removes a family


@pytest.fixture
def breast_cancer(tmp_path):
    """scikit-learn's breast-cancer data as a CSV: no ownership columns."""
    from sklearn.datasets import load_breast_cancer

    path = tmp_path / "bc.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    return path


NO_OWNERSHIP = "this data has no ownership columns: the elf space searches train.lr only"


def test_data_without_ownership_is_one_line_that_says_what_is_left(breast_cancer, tmp_path):
    from search.driver import write_data_notes
    from trainables.data.presets import build_dataset

    data = build_dataset("table", {"path": str(breast_cancer), "label": "target"})
    space = load_space("elf")
    fitted, notes = fit_to_data(space, DataFacts.of(data))
    assert notes == [NO_OWNERSHIP] and fitted.searched == ("train.lr",)
    write_data_notes(tmp_path, data, notes, {})
    assert json.loads((tmp_path / "data.json").read_text())["collapsed"] == [NO_OWNERSHIP]


def test_data_without_ownership_through_main(breast_cancer, tmp_path, monkeypatch, caplog):
    """The preflight alone: the fitting's one line in the log, nothing written."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    args = ["space=elf", "data=table", f"data.path={breast_cancer}", "data.label=target"]
    assert main([*args, "preflight=only", "mlflow.enabled=false"]) == 0
    said = [r.getMessage() for r in caplog.records if "ownership" in r.getMessage()]
    assert said == [f"data table: {NO_OWNERSHIP}"]
    assert list(cwd.iterdir()) == [] and _no_ray()


# ---------------------------------------------------------------- the whole search


@pytest.mark.slow
def test_every_key_pinned_trains_one_configuration_and_confirms_it(
    ray_local, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    argv = [
        *ONE_CONFIG,
        *(f"data.{k}={v}" for k, v in SMALL.items()),
        "search.num_samples=2",
        "train.max_epochs=2",
        "mlflow.enabled=false",
        "confirm.min_seeds=2",
        "confirm.max_seeds=2",
        f"output_dir={out}",
    ]
    assert main(argv) == 0
    starts = [e for e in read_record(out / "record.jsonl") if e["event"] == "start"]
    (trial,) = [e for e in starts if not e.get("stage")]
    assert {k: trial["params"][k] for k in ("loss.kind", "loss.gamma", "loss.alpha")} == {
        "loss.kind": "focal",
        "loss.gamma": 2.0,
        "loss.alpha": "inverse_frequency",
    }
    confirmed = {e["params"]["loss.kind"] for e in starts if e.get("stage")}
    assert confirmed == {"focal", "ce"}  # the configuration and its plain-CE baseline
