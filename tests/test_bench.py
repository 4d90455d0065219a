"""Benchmark suite (issue 7): the formulas on hand-built inputs, the data part end to end, the gpu
part's skip, and (slow) the harness part's quick run on a real local Ray."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.csv as pacsv
import pytest
import torch

from benchmarks import data_path, front_search, gpu, harness, search_efficiency
from benchmarks.harness import Run, Workload, efficiency, epoch_overhead, paired
from spaces import load_space


def test_paired_runs_before_then_every_side_in_rotated_order():
    calls = []
    rounds = paired(
        {"a": lambda r: calls.append(("a", r)) or r, "b": lambda r: calls.append(("b", r)) or -r},
        repeats=3,
        before=lambda r: calls.append(("before", r)) or 10 * r,
    )
    assert calls == [
        ("before", 0), ("a", 0), ("b", 0),
        ("before", 1), ("b", 1), ("a", 1),
        ("before", 2), ("a", 2), ("b", 2),
    ]  # fmt: skip
    assert rounds[2] == {"before": 20, "a": 2, "b": -2}


def test_efficiency_is_ideal_over_wall():
    run = Run(wall_s=10.0, epochs=24, trials=2)
    # ideal = 24 epochs × (1.2 s / 12 epochs) / 2 slots = 1.2 s
    assert efficiency(run, trial_s=1.2, epochs=12, slots=2) == pytest.approx(0.12)
    assert efficiency(run, 1.2, 12, 2, lost_s=4.0) == pytest.approx(1.2 / 6.0)


def _result(trial: str, t: float, epoch_s: float, f1: float = 0.5) -> dict:
    return {
        "event": "result",
        "trial_id": trial,
        "time": t,
        "metrics": {"epoch_time_s": epoch_s, "val_macro_f1": f1},
    }


def test_epoch_overhead_is_the_median_gap_less_the_epoch():
    results = [
        _result("a", 100.0, 0.8),
        _result("b", 100.2, 0.5),
        _result("a", 101.0, 0.9),  # 1.0 − 0.9 = 0.1
        _result("b", 100.8, 0.5),  # 0.6 − 0.5 = 0.1
        _result("a", 102.5, 1.2),  # 1.5 − 1.2 = 0.3
    ]
    assert epoch_overhead(results) == pytest.approx(0.1)
    assert epoch_overhead(results[:2]) is None


def test_grid_space_has_one_trial_per_seed(tmp_path):
    space = load_space(str(harness.grid_space(tmp_path / "s.yaml", 5)))
    assert space.grid_size == 5


def _record(folder, events) -> None:
    folder.mkdir()
    (folder / "record.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_search_comparison_times_the_shared_best(tmp_path):
    asha, fifo = tmp_path / "asha", tmp_path / "fifo"
    # ASHA+TPE best 0.80 at t=3; FIFO+random best 0.798 (within 0.005 of 0.80) first at t=12.
    _record(asha, [_result("x", 1000 + t, 0.1, f1) for t, f1 in [(2, 0.6), (3, 0.80), (5, 0.7)]])
    _record(fifo, [_result("y", 2000 + t, 0.1, f1) for t, f1 in [(4, 0.7), (12, 0.798)]])
    rounds = [
        {
            "asha_tpe": Run(wall_s=9.0, epochs=3, trials=1, output_dir=asha, start_time=1000.0),
            "fifo_random": Run(wall_s=20.0, epochs=2, trials=1, output_dir=fifo, start_time=2000.0),
        }
    ]
    out = search_efficiency.compare(rounds)
    assert out["asha_tpe_time_to_best_s"] == [pytest.approx(3.0)]
    assert out["fifo_random_time_to_best_s"] == [pytest.approx(12.0)]
    assert out["asha_tpe_time_to_best_after_first_result_s"] == [pytest.approx(1.0)]
    assert out["speedup"] == [pytest.approx(4.0)]
    assert out["best_difference"] == [pytest.approx(0.002)]
    assert out["fifo_random_reached"] == [1.0]
    # FIFO: one trial, epochs 0.7 → 0.798; second half [0.798]: no step; spread max − median = 0
    assert out["val_macro_f1_epoch_noise"] == [0.0]
    assert out["val_macro_f1_trial_spread"] == [0.0]


def test_landscape_measures_noise_and_spread():
    curves = {"a": [0.5, 0.7, 0.80, 0.78, 0.82], "b": [0.5, 0.6, 0.70, 0.74, 0.70], "c": [0.6, 0.9]}
    events = [_result(t, float(i), 0.1, f1) for t, v in curves.items() for i, f1 in enumerate(v)]
    out = search_efficiency.landscape(events)
    # second halves: a [0.80, 0.78, 0.82] → 0.02, 0.04; b [0.70, 0.74, 0.70] → 0.04, 0.04; c [0.9]
    assert out["epoch_noise"] == pytest.approx(0.04)
    assert out["trial_spread"] == pytest.approx(0.9 - 0.82)  # bests 0.82, 0.74, 0.9


def test_search_that_never_reaches_the_best_counts_its_wall(tmp_path):
    asha, fifo = tmp_path / "asha", tmp_path / "fifo"
    _record(asha, [_result("x", 1003.0, 0.1, 0.80)])
    _record(fifo, [_result("y", 2004.0, 0.1, 0.70)])
    rounds = [
        {
            "asha_tpe": Run(wall_s=9.0, epochs=1, trials=1, output_dir=asha, start_time=1000.0),
            "fifo_random": Run(wall_s=20.0, epochs=1, trials=1, output_dir=fifo, start_time=2000.0),
        }
    ]
    out = search_efficiency.compare(rounds)
    assert out["fifo_random_reached"] == [0.0]
    assert out["fifo_random_time_to_best_s"] == [20.0]  # a lower bound
    assert out["speedup"] == [pytest.approx(20.0 / 3.0)]


def test_gpu_fraction_gets_enough_cpus():
    assert gpu.cpu_per_trial(0.125, cpus=16, gpus=1) == 1.0  # 8 trials, 8 of 16 CPUs
    assert gpu.cpu_per_trial(0.125, cpus=2, gpus=1) == 0.25  # 8 trials share 2 CPUs
    assert gpu.cpu_per_trial(1.0, cpus=16, gpus=1) == 1.0


def test_gpu_sampler_without_nvidia_smi_records_nothing(monkeypatch):
    monkeypatch.setattr(gpu.shutil, "which", lambda name: None)
    sampler = gpu.GpuSampler()
    sampler.poll()
    assert sampler.summary() == {
        "util_mean": None,
        "memory_peak_mib": None,
        "process_peak_mib": None,
    }


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip without CUDA")
def test_gpu_part_is_skipped_with_a_message_without_cuda(capsys):
    figures = gpu.run(quick=True)
    assert "no CUDA" in figures["skipped"]
    assert "skipped" in capsys.readouterr().out


def test_generated_table_has_the_rows_and_columns(tmp_path):
    path = data_path.write_table(tmp_path / "t.csv", 2000)
    table = pacsv.read_csv(path)
    assert table.num_rows == 2000
    expected = {"comment_group", "message", *data_path.FEATURES, *data_path.OWNERSHIP}
    assert set(table.column_names) == expected


def test_data_part_quick_loads_every_row():
    figures = data_path.run(quick=True)
    rows = data_path.SIZES[True][0]
    assert figures["load_rows"] == rows  # train + val + test = the table
    assert figures["load_peak_rss_mib"] >= figures["rss_after_import_mib"] > 0
    assert figures["load_vs_read"] > 0 and figures["synthetic_build_s"] > 0
    assert figures["target_met"] in (True, False)


@pytest.mark.slow
def test_harness_quick_runs_both_sides_on_the_same_work(ray_local):
    figures = harness.run(quick=True)
    sizes = harness.SIZES[True]
    epochs = sizes.trials * sizes.epochs  # FIFO: every trial trains every epoch
    assert figures["t0.5s_ours_epochs"] == figures["t0.5s_baseline_epochs"] == epochs
    for side in ("ours", "baseline"):
        assert 0 < figures[f"t0.5s_{side}_efficiency"] < 1.5
    assert figures["slots"] == 2
    assert isinstance(figures["t0.5s_target_met"], bool)
    assert Workload(2, 2, 512).trials == 2


def _box(f1: float, recall: float, ece: float) -> float:
    """The volume a point dominates up to the reference (−0.01, −0.01, 1.01) in value terms."""
    return (f1 + 0.01) * (recall + 0.01) * (1.01 - ece)


def test_front_hypervolume_against_inclusion_exclusion():
    """A = (0.8, 0.5, 0.1) and B = (0.6, 0.7, 0.2) (macro-F1 max, worst recall max, ECE min) are
    the front; C = (0.5, 0.4, 0.3) is dominated by A. HV = |A| + |B| − |A ∩ B|, the intersection
    being the box of (0.6, 0.5, 0.2)."""
    values = np.array([[0.8, 0.5, 0.1], [0.6, 0.7, 0.2], [0.5, 0.4, 0.3]])
    expected = _box(0.8, 0.5, 0.1) + _box(0.6, 0.7, 0.2) - _box(0.6, 0.5, 0.2)
    assert front_search.front_hv(values, front_search.OBJECTIVES) == pytest.approx(expected)
    assert front_search.front_hv(np.empty((0, 3)), front_search.OBJECTIVES) == 0.0


def _epoch(trial: str, epoch: int, f1: float, recall: float, ece: float) -> dict:
    metrics = {"val_macro_f1": f1, "val_worst_recall": recall, "val_ece": ece, "epoch": epoch}
    return {"event": "result", "trial_id": trial, "epoch": epoch, "time": 1.0, "metrics": metrics}


def test_front_at_budget_counts_trials_finished_within_the_first_epochs(tmp_path):
    """max_epochs 2, budget 3 results: x (epochs 0, 1) finished inside, y's second epoch is the
    4th result: only x counts, at its best macro-F1 epoch (epoch 0: 0.7, 0.4, 0.2); a
    confirmation's trial is not the search's."""
    events = [
        {"event": "start", "trial_id": "x", "params": {}},
        _epoch("x", 0, 0.7, 0.4, 0.2),
        {"event": "start", "trial_id": "y", "params": {}},
        _epoch("y", 0, 0.9, 0.9, 0.0),
        _epoch("x", 1, 0.6, 0.5, 0.1),
        _epoch("y", 1, 0.9, 0.9, 0.0),
        {"event": "start", "trial_id": "c", "params": {}, "stage": "confirm"},
        _epoch("c", 0, 0.1, 0.1, 0.9),
    ]
    _record(tmp_path / "out", events)
    out = tmp_path / "out"
    assert len(front_search.search_results(out)) == 4
    assert front_search.val_hv_at_budget(out, 3, 2) == pytest.approx(_box(0.7, 0.4, 0.2))
    both = _box(0.9, 0.9, 0.0)  # y dominates x
    assert front_search.val_hv_at_budget(out, 4, 2) == pytest.approx(both)


def test_confirmed_front_from_the_test_means(tmp_path):
    def config(f1: float, recall: float, ece: float, seeds: list) -> dict:
        means = {"test_macro_f1": f1, "test_worst_recall": recall, "test_ece": ece}
        return {"seeds": seeds, "test": {m: {"mean": v} for m, v in means.items()}}

    report = tmp_path / "report"
    report.mkdir()
    configs = [config(0.8, 0.5, 0.1, [0, 1]), config(0.6, 0.7, 0.2, [0]), config(1, 1, 0, [])]
    (report / "summary.json").write_text(json.dumps({"confirmation": {"configs": configs}}))
    expected = _box(0.8, 0.5, 0.1) + _box(0.6, 0.7, 0.2) - _box(0.6, 0.5, 0.2)
    assert front_search.confirmed_hv(tmp_path) == pytest.approx(expected)  # no seeds: left out
    (report / "summary.json").write_text(json.dumps({"confirmation": None}))
    assert front_search.confirmed_hv(tmp_path) is None


def test_the_winner_must_beat_the_incumbent_by_a_paired_interval():
    """Gains over ASHA + TPE per search seed: +0.02 ± small on every seed beats it (interval by
    hand: mean ± t(0.975, 4)·sd/√5); a larger but noisy mean gain does not; nothing ahead keeps
    the incumbent."""
    steady = [0.021, 0.019, 0.020, 0.022, 0.018]
    noisy = [0.2, -0.15, 0.1, -0.05, 0.0]
    scores = [
        {
            "asha_tpe": {"test_hv": 0.5},
            "moasha_motpe": {"test_hv": 0.5 + a},
            "fifo_random": {"test_hv": 0.5 + b},
        }
        for a, b in zip(steady, noisy, strict=True)
    ]
    mean, low, high = front_search.gain(scores, "moasha_motpe")
    half = 2.7764451051977987 * np.std(steady, ddof=1) / np.sqrt(5)
    assert (mean, low, high) == pytest.approx((0.02, 0.02 - half, 0.02 + half))
    assert front_search.winner(scores) == "moasha_motpe"
    for row, b in zip(scores, noisy, strict=True):
        row["moasha_motpe"]["test_hv"] = 0.5 - 0.01 + b / 100
    assert front_search.winner(scores) == "asha_tpe"


def test_the_per_seed_front_hypervolume_of_a_recorded_confirmation(tmp_path):
    """Two configurations, two confirmation seeds, recorded as the stage records them: each
    seed's front hypervolume by hand (boxes against the fixed reference point), their mean and
    the t half-width t(0.975, 1)·sd/√2 = t·|one − two|/2."""
    from test_report import STANDARD_TRIALS, write_run

    values = {  # (source, seed) -> test macro-F1, worst recall, ECE
        ("a", 1): (0.8, 0.5, 0.1),
        ("b", 1): (0.6, 0.7, 0.2),
        ("a", 2): (0.7, 0.6, 0.1),
        ("b", 2): (0.5, 0.5, 0.3),
    }
    events = []
    for (src, seed), (f1, recall, ece) in values.items():
        rid = f"confirm_{src}_s{seed}"
        metrics = {"test_macro_f1": f1, "test_worst_recall": recall, "test_ece": ece}
        events += [
            {"event": "start", "trial_id": rid, "params": {"seed": seed}}
            | {"stage": "confirmation", "source": src, "role": "candidate"},
            {"event": "result", "trial_id": rid, "epoch": 2, "metrics": metrics},
            {"event": "end", "trial_id": rid, "state": "completed", "epochs": 3},
        ]
    out = write_run(tmp_path / "run", STANDARD_TRIALS, extra_lines=[json.dumps(e) for e in events])
    one = _box(0.8, 0.5, 0.1) + _box(0.6, 0.7, 0.2) - _box(0.6, 0.5, 0.2)
    two = _box(0.7, 0.6, 0.1)  # b's seed-2 point is dominated
    mean, half = front_search.confirmed_hv_by_seed(out)
    assert mean == pytest.approx((one + two) / 2)
    assert half == pytest.approx(12.706204736174707 * abs(one - two) / 2)  # sd = |Δ|/√2
