"""Property tests of the Pareto core against brute force, plus hand cases and run-level rules.

Brute force works on raw values with each objective's direction compared explicitly (no sign
flip), so it also checks the one place where directions become minimisation.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from test_report import STANDARD_TRIALS, epochs, plain, trial, write_run

from reports import analyse, load_run
from reports.baseline import find_baseline
from reports.objectives import Objective, parse_objectives, to_minimisation
from reports.pareto import (
    hypervolume,
    hypervolume_share,
    knee,
    nadir_reference,
    nondominated,
    pareto_ranks,
)
from reports.rows import CANDIDATE, STOPPED, TrialRow
from trainables.errors import UserInputError
from trainables.params import is_plain_ce


def at_least_as_good(a: float, b: float, direction: str) -> bool:
    return a >= b if direction == "max" else a <= b


def dominates(a: np.ndarray, b: np.ndarray, dirs: list[str]) -> bool:
    """a dominates b: at least as good everywhere, strictly better somewhere."""
    weak = all(at_least_as_good(x, y, d) for x, y, d in zip(a, b, dirs, strict=True))
    return weak and any(x != y for x, y in zip(a, b, strict=True))


def brute_front(values: np.ndarray, dirs: list[str], rows: set[int] | None = None) -> set[int]:
    """O(n²) non-dominated set among `rows` (default: every finite row)."""
    if rows is None:
        rows = {i for i in range(len(values)) if np.isfinite(values[i]).all()}
    return {i for i in rows if not any(dominates(values[j], values[i], dirs) for j in rows)}


def brute_ranks(values: np.ndarray, dirs: list[str]) -> list[int]:
    """Peel fronts one at a time; -1 for non-finite rows."""
    ranks = [-1] * len(values)
    left = {i for i in range(len(values)) if np.isfinite(values[i]).all()}
    rank = 0
    while left:
        front = brute_front(values, dirs, left)
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def random_case(seed: int) -> tuple[np.ndarray, list[Objective]]:
    """2–5 objectives, mixed directions, integer grid (ties) or floats, duplicates, NaN/inf."""
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 6)), int(rng.integers(0, 40))
    values = (rng.integers(0, 4, (n, k)) if seed % 2 else rng.normal(size=(n, k))).astype(float)
    if n:
        values = np.vstack([values, values[rng.integers(0, n, 3)]])  # exact duplicates
        bad = rng.random(len(values)) < 0.15
        values[bad, rng.integers(0, k)] = rng.choice([np.nan, np.inf, -np.inf])
    dirs = [str(d) for d in rng.choice(["max", "min"], k)]
    return values, [Objective(f"m{j}", d) for j, d in enumerate(dirs)]


@pytest.mark.parametrize("seed", range(40))
def test_front_and_ranks_match_brute_force(seed: int) -> None:
    values, objs = random_case(seed)
    dirs = [o.direction for o in objs]
    pts = to_minimisation(values, objs)
    assert set(np.flatnonzero(nondominated(pts))) == brute_front(values, dirs)
    assert pareto_ranks(pts).tolist() == brute_ranks(values, dirs)


def test_duplicates_share_the_front_and_rank() -> None:
    pts = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [2.0, 2.0], [np.nan, 0.0]])
    assert nondominated(pts).tolist() == [True, True, True, False, False, False]
    assert pareto_ranks(pts).tolist() == [0, 0, 0, 1, 1, -1]


def test_one_objective_and_empty_input() -> None:
    pts = np.array([[3.0], [1.0], [1.0], [2.0], [np.inf]])
    assert nondominated(pts).tolist() == [False, True, True, False, False]
    assert pareto_ranks(pts).tolist() == [2, 0, 0, 1, -1]
    assert nondominated(np.empty((0, 3))).tolist() == []
    assert pareto_ranks(np.empty((0, 3))).tolist() == []


def test_hypervolume_2d_by_hand() -> None:
    # staircase (1,3), (2,2), (3,1) under ref (4,4): columns of width 1 and heights 1, 2, 3
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(pts, np.array([4.0, 4.0])) == pytest.approx(6.0)
    # a dominated point, a NaN row and a point beyond the reference add nothing
    more = np.vstack([pts, [[3.0, 3.0], [np.nan, 0.0], [0.0, 5.0]]])
    assert hypervolume(more, np.array([4.0, 4.0])) == pytest.approx(6.0)
    assert hypervolume(np.array([[5.0, 5.0]]), np.array([4.0, 4.0])) == 0.0


def test_hypervolume_share_by_hand() -> None:
    # the staircase above: 6 of the 3 x 3 box between ideal (1, 1) and ref (4, 4)
    pts = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [np.nan, 0.0]])
    assert hypervolume_share(pts, np.array([4.0, 4.0])) == pytest.approx(6.0 / 9.0)
    assert hypervolume_share(np.array([[1.0, 1.0]]), np.array([2.0, 3.0])) == pytest.approx(1.0)
    assert hypervolume_share(np.array([[4.0, 1.0]]), np.array([4.0, 4.0])) is None  # empty box


def test_hypervolume_2d_mixed_directions() -> None:
    # f1 (max) and ECE (min): (0.8, 0.1), (0.6, 0.05) against ref f1 0.5, ECE 0.2:
    # 0.3·0.1 + 0.1·0.15 − overlap 0.1·0.1 = 0.035
    objs = parse_objectives("f1:max,ece:min")
    pts = to_minimisation(np.array([[0.8, 0.1], [0.6, 0.05]]), objs)
    ref = to_minimisation(np.array([[0.5, 0.2]]), objs)[0]
    assert hypervolume(pts, ref) == pytest.approx(0.035)


def test_hypervolume_3d_by_hand() -> None:
    ref = np.array([2.0, 2.0, 2.0])
    assert hypervolume(np.array([[1.0, 1.0, 1.0]]), ref) == pytest.approx(1.0)
    # boxes 2·1·1 and 1·2·1 overlapping in a unit cube: 2 + 2 − 1
    assert hypervolume(np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]), ref) == pytest.approx(3.0)
    # three axis-aligned slabs 1·2·2 each; pairwise overlaps 1·1·2, triple overlap 1·1·1
    slabs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert hypervolume(slabs, ref) == pytest.approx(3 * 4 - 3 * 2 + 1)


def test_hypervolume_random_2d_against_sweep() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        pts = rng.random((int(rng.integers(1, 15)), 2))
        ref = np.array([1.1, 1.2])
        front = pts[nondominated(pts)]
        front = front[np.argsort(front[:, 0])]  # x ascending, so y descending
        xs = np.append(front[:, 0], ref[0])
        sweep = sum((xs[i + 1] - xs[i]) * (ref[1] - front[i, 1]) for i in range(len(front)))
        assert hypervolume(pts, ref) == pytest.approx(sweep)


def test_reference_point_rule() -> None:
    pts = np.array([[0.0, 10.0], [2.0, 10.0], [1.0, 10.0]])
    # column 0: worst 2 + 0.1·range 2; column 1 has no spread: 10 + 0.1·max(|10|, 1)
    assert nadir_reference(pts, 0.1) == pytest.approx([2.2, 11.0])
    assert nadir_reference(np.array([[0.0, -0.5]]), 0.1) == pytest.approx([0.1, -0.4])


def test_knee_by_hand() -> None:
    # after min-max scaling: (0, 1), (0.3, 0.2), (1, 0) → distances 1, 0.36, 1
    assert knee(np.array([[0.0, 100.0], [0.3, 20.0], [1.0, 0.0]])) == 1
    assert knee(np.array([[0.0, 1.0], [1.0, 0.0]])) == 0  # a tie: the lower index
    assert knee(np.array([[5.0, 5.0, 5.0]])) == 0


def test_objective_parsing_and_unknown_metric(tmp_path: Path) -> None:
    objs = parse_objectives("val_macro_f1:max, val_ece:min")
    assert [(o.metric, o.direction) for o in objs] == [("val_macro_f1", "max"), ("val_ece", "min")]
    for bad in ["val_ece", "val_ece:low", "a:max,a:min", ""]:
        with pytest.raises(UserInputError):
            parse_objectives(bad)
    run = load_run(write_run(tmp_path / "run", STANDARD_TRIALS))
    expected = r"'val_f1'.*did you mean.*available metrics: .*val_ece"
    with pytest.raises(UserInputError, match=expected):
        analyse(run, "val_f1:max")


def test_baseline_is_earliest_plain_ce_and_deltas(tmp_path: Path) -> None:
    analysis = analyse(load_run(write_run(tmp_path / "run", STANDARD_TRIALS)))
    # t1 has the lower id but t10 was started first
    assert analysis.baseline is not None and analysis.baseline.trial_id == "t10"
    assert analysis.deltas["t2"] == pytest.approx(
        {"val_macro_f1": 0.10, "val_worst_recall": 0.15, "val_ece": -0.02, "train_time_s": 6.0}
    )
    assert is_plain_ce({"loss.kind": "ce"})  # absent keys take their defaults
    for extra in [
        {"elf.strategy": "aco"},
        {"cw.method": "balanced"},
        {"train.balanced_sampling": True},
        {"loss.kind": "focal"},
    ]:
        assert not is_plain_ce(plain(**extra))


def row(tid: str, order: int, state: str | None, f1: float = 0.5, **params: object) -> TrialRow:
    """A hand-built report row (id, order, state, params and val_macro_f1 matter to the baseline)."""
    values = {"val_macro_f1": f1}
    return TrialRow(tid, order, state, 3, 1, plain(**params), values, CANDIDATE, "")


def test_baseline_is_the_best_completed_plain_ce_trial() -> None:
    f1 = Objective("val_macro_f1", "max")
    rows = [
        row("a", 0, "failed", 0.9),
        row("b", 1, "stopped_early", 0.9),
        row("c", 2, "completed", 0.9, **{"elf.strategy": "aco"}),  # completed, but not plain CE
        row("d", 3, "completed", 0.6),
        row("e", 4, "completed", 0.7),
        row("f", 5, "completed", 0.7),
    ]
    base = find_baseline(rows, f1)
    assert base is not None and base.trial_id == "e"  # the best; a tie goes to the earlier
    assert find_baseline(rows, Objective("val_macro_f1", "min")).trial_id == "d"
    # no completed plain-CE trial: the earliest plain-CE one of any state, shown with its note
    base = find_baseline([rows[1], rows[0], rows[2]], f1)
    assert base is not None and base.trial_id == "a"
    assert find_baseline([rows[2]], f1) is None


def test_no_baseline_is_a_note(tmp_path: Path) -> None:
    trials = [t for t in STANDARD_TRIALS if t["id"] not in ("t1", "t10")]
    analysis = analyse(load_run(write_run(tmp_path / "run", trials)))
    assert analysis.baseline is None and analysis.deltas == {}
    assert any("no plain-CE baseline" in n for n in analysis.notes)


def test_stopped_early_listed_but_not_on_front(tmp_path: Path) -> None:
    analysis = analyse(load_run(write_run(tmp_path / "run", STANDARD_TRIALS)))
    t6 = analysis.row("t6")  # (0.90, 0.90, 0.01, 5) would dominate every full-budget trial
    assert t6.status == STOPPED and "stopped early" in t6.note
    assert "t6" not in analysis.front and "t6" not in analysis.ranks
    assert analysis.front == ["t2", "t3", "t5", "t10"]
    assert {r.trial_id for r in analysis.excluded} == {"t7", "t8", "t9"}
    assert {r.trial_id for r in analysis.candidates} == {"t1", "t2", "t3", "t4", "t5", "t10"}


def test_counted_epoch_and_total_time(tmp_path: Path) -> None:
    rows = epochs(0.7, 0.5, 0.06, 12)  # best f1 at epoch 1; time 12, 24, 36
    analysis = analyse(load_run(write_run(tmp_path / "a", [trial("x", plain(), rows)])))
    x = analysis.row("x")
    assert x.epoch == 1 and x.status == CANDIDATE
    assert x.values == pytest.approx(
        {"val_macro_f1": 0.7, "val_worst_recall": 0.5, "val_ece": 0.06, "train_time_s": 36.0}
    )
    last = analyse(
        load_run(write_run(tmp_path / "b", [trial("x", plain(), rows)])), epoch_rule="last"
    )
    assert last.row("x").epoch == 2 and last.row("x").values["val_macro_f1"] == pytest.approx(0.6)


def test_repeated_and_truncated_lines(tmp_path: Path) -> None:
    rows = epochs(0.7, 0.5, 0.06, 12)
    repeat = json.dumps({"event": "result", "trial_id": "x", "epoch": 1, "metrics": rows[1]})
    folder = write_run(
        tmp_path / "run",
        [trial("x", plain(), rows)],
        extra_lines=[repeat, '{"event": "end", "trial_id": "y", "st'],
    )
    run = load_run(folder)
    assert [t.trial_id for t in run.trials] == ["x"]
    assert sorted(run.trials[0].results) == [0, 1, 2]
    assert any("unreadable line(s) [7]" in n for n in run.notes)


def test_brute_force_matches_on_every_pair_of_a_run(tmp_path: Path) -> None:
    """The run-level front (4 objectives) equals brute force over the full-budget rows."""
    analysis = analyse(load_run(write_run(tmp_path / "run", STANDARD_TRIALS)))
    cands = analysis.candidates
    values = np.array([[r.values[o.metric] for o in analysis.objectives] for r in cands])
    dirs = [o.direction for o in analysis.objectives]
    expected = {cands[i].trial_id for i in brute_front(values, dirs)}
    assert set(analysis.front) == expected
    for a, b in itertools.combinations(range(len(dirs)), 2):
        pts = to_minimisation(values[:, [a, b]], [analysis.objectives[a], analysis.objectives[b]])
        assert set(np.flatnonzero(nondominated(pts))) == brute_front(
            values[:, [a, b]], [dirs[a], dirs[b]]
        )
