"""Benchmark suite (issue 7): the formulas on hand-built inputs, the data part end to end, the gpu
part's skip, and (slow) the harness part's quick run on a real local Ray."""

from __future__ import annotations

import json

import pyarrow.csv as pacsv
import pytest
import torch

from benchmarks import data_path, gpu, harness, search_efficiency
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
