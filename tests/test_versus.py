"""Families and head-to-head comparisons (confirm.families, confirm.versus): which trials the
confirmation adds, which candidates face each other, the paired Δ of two candidates against a hand
computation, the shared Bonferroni family, and the seeds an open pair asks for."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from record import BASELINE, CANDIDATE, COMPLETED, CONFIRMATION, STOPPED_EARLY, TrialRecord
from reports.confirmation import UNDECIDED, confirm, family_table, note, split_alpha
from reports.load import Run
from reports.objectives import Objective
from reports.sequential import critical_t
from search.config import load_config
from search.confirm import choose, next_seeds
from trainables.canonical import family_of
from trainables.params import families

F1 = Objective("val_macro_f1", "max")
ELF = {"elf.strategy": "rso"}
FOCAL = {"loss.kind": "focal", "loss.gamma": 2.0}


def test_families_name_each_departure_from_plain_ce():
    assert families({}) == ()
    assert families({"loss.kind": "ce", "elf.strategy": "none"}) == ()
    assert families(FOCAL | ELF | {"cw.method": "balanced"}) == ("focal", "elf", "cw")
    assert families({"train.balanced_sampling": True, "distill.kind": "kl"}) == (
        "balanced_sampling",
        "distill",
    )
    assert families(ELF | {"lq.method": "self_confidence"}) == ("elf", "lq")
    two_tasks = {"loss.kind": "ce", "loss.t1.kind": "focal", "loss.t2.kind": "ce"}
    assert families(two_tasks) == ("focal",)


def _search(params: dict[str, dict], scores: dict[str, float]) -> list[TrialRecord]:
    return [
        TrialRecord(
            tid,
            i,
            params=p | {"seed": 0, "train.lr": 0.004},
            results={
                e: {"val_macro_f1": scores[tid], "val_worst_recall": 0.5, "val_ece": 0.1}
                for e in range(1, 4)
            },
            state=STOPPED_EARLY if tid in STOPPED else COMPLETED,
            epochs=1 if tid in STOPPED else 3,
        )
        for i, (tid, p) in enumerate(params.items())
    ]


STOPPED = ("smooth",)  # ASHA stopped it: its family's only trial


SEARCH = {
    "both": ELF | FOCAL,  # the best trial: in both families
    "elf": ELF,
    "focal": FOCAL | {"loss.gamma": 3.0},
    "cw": {"cw.method": "balanced"},
    "plain": {},
    "smooth": {"loss.kind": "label_smoothing", "loss.smoothing": 0.1},
}
SCORES = {"both": 0.9, "elf": 0.88, "focal": 0.87, "cw": 0.86, "plain": 0.85, "smooth": 0.8}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (["confirm.families=false", "confirm.versus=[]"], {"both"}),
        ([], {"both", "cw", "smooth"}),  # the best of focal and of elf is "both"
        (["confirm.versus=[elf:focal]"], {"both", "cw", "elf", "focal", "smooth"}),
        # focal without cw: "both" (the best focal trial), not the focal-only one
        (["confirm.families=false", "confirm.versus=[focal:cw]"], {"both", "cw"}),
    ],
)
def test_choose_adds_the_best_of_each_family_and_each_side(keys, expected):
    """top_k=1 without the front picks the best trial; each family adds its best trial (one that
    ASHA stopped where the family has no other), each versus pair the best trial of each side
    without the other family (ranked on validation)."""
    cfg = load_config(["train.max_epochs=3", "confirm.top_k=1", "confirm.front=false", *keys])
    run_ = Run(Path("."), _search(SEARCH, SCORES), cfg.to_dict(), None, [])
    chosen, _ = choose(run_, cfg)
    assert {k for k, (role, _) in chosen.items() if role == CANDIDATE} == expected


def _runs(per_seed: dict[str, list[float]]) -> list[TrialRecord]:
    roles = {"b": BASELINE}
    params = {"b": {}, "both": ELF | FOCAL, "e": ELF, "f": FOCAL}
    return [
        TrialRecord(
            f"confirm_{src}_s{s + 1}",
            0,
            params=params[src] | {"seed": s + 1},
            results={3: {"test_macro_f1": v, "val_macro_f1": v}},
            state=COMPLETED,
            stage=CONFIRMATION,
            source=src,
            role=roles.get(src, CANDIDATE),
        )
        for src, values in per_seed.items()
        for s, v in enumerate(values)
    ]


def test_a_pairs_delta_is_the_mean_paired_difference_of_its_sides():
    """elf:focal pits "e" (ELF, no focal) against "f" (focal, no ELF), not "both", whatever its
    rank; Δ = mean over their common seeds of e − f, half-width t*_n·sd/√n at the seeds' share of
    α over 3 candidates + 1 pair."""
    rng = np.random.default_rng(7)
    base = 0.8 + rng.normal(0, 0.01, 8)
    e = base + 0.02 + rng.normal(0, 0.005, 8)
    f = base[:6] + 0.01 + rng.normal(0, 0.005, 6)  # two seeds fewer: pairs on 6
    runs = _runs({"b": list(base), "both": list(base + 0.03), "e": list(e), "f": list(f)})
    rank = {"both": 0, "f": 1, "e": 2}
    c = confirm(runs, [F1], F1, None, resamples=100, versus=[("elf", "focal")], rank=rank)
    assert c.sides == {"elf:focal": ("e", "f")}
    cmp = c.versus["elf:focal"]["test_macro_f1"]
    d = e[:6] - f
    alpha_seeds, _ = split_alpha(0.05, 4)
    half = critical_t(6, alpha_seeds) * d.std(ddof=1) / math.sqrt(6)
    assert cmp.seeds == 6 and cmp.delta.estimate == pytest.approx(d.mean())
    assert cmp.delta.high - cmp.delta.estimate == pytest.approx(half)
    alone = confirm(runs, [F1], F1, None, resamples=100)  # no pair: α over 3
    wider = c.comparisons["e"]["test_macro_f1"].delta
    narrower = alone.comparisons["e"]["test_macro_f1"].delta
    assert wider.high - wider.low > narrower.high - narrower.low
    assert "head to head on test_macro_f1: elf (trial e) vs focal (trial f)" in c.answer
    assert "Bonferroni over 4" in c.answer and "Bonferroni over 4 comparison(s)" in note(c)


def test_a_pair_without_both_sides_is_skipped():
    runs = _runs({"b": [0.8] * 3, "e": [0.82] * 3})
    c = confirm(runs, [F1], F1, None, resamples=100, versus=[("elf", "focal")], rank={})
    assert c.versus == {} and c.sides == {}


def test_an_open_pair_gives_seeds_to_the_side_behind():
    """Both sides decided against the baseline, their pair open: the side with fewer seeds trains
    up to `per` past the shared seeds, the other waits, the baseline pairs what exists."""
    rng = np.random.default_rng(2)
    base = 0.8 + rng.normal(0, 0.002, 10)
    runs = _runs(
        {
            "b": list(base),
            "e": list(base + 0.05 + rng.normal(0, 0.01, 10)),
            "f": list(base[:6] + 0.05 + rng.normal(0, 0.01, 6)),
        }
    )
    looked = confirm(runs, [F1], F1, None, resamples=100, versus=[("elf", "focal")], rank={})
    assert {x["test_macro_f1"].verdict for x in looked.comparisons.values()} == {"better"}
    assert looked.versus["elf:focal"]["test_macro_f1"].verdict == UNDECIDED
    need = next_seeds(looked, {"b": 10, "e": 10, "f": 6}, budget=30, slots=4)
    assert need == {"f": range(7, 8), "b": range(1, 11)}  # per = 4 // 3 = 1


def test_each_family_names_its_best_candidate_by_the_search_rank():
    """ "both" (ELF and focal) ranks first, so it is the best of both families; without it, each
    one-family candidate is its family's best; the table carries that candidate's verdict."""
    rng = np.random.default_rng(4)
    base = 0.8 + rng.normal(0, 0.002, 6)
    per_seed = {"b": list(base), "both": list(base + 0.05), "e": list(base), "f": list(base)}
    rank = {"both": 0, "f": 1, "e": 2}
    c = confirm(_runs(per_seed), [F1], F1, None, resamples=100, rank=rank)
    assert c.family_best == {"elf": "both", "focal": "both"}
    rows = family_table(c)
    verdict = c.comparisons["both"]["test_macro_f1"].verdict
    assert {r["family"]: (r["best"], r["verdict"]) for r in rows} == {
        "elf": ("both", verdict),
        "focal": ("both", verdict),
    }
    del per_seed["both"]
    c = confirm(_runs(per_seed), [F1], F1, None, resamples=100, rank=rank)
    assert c.family_best == {"elf": "e", "focal": "f"}


def test_a_loss_plug_in_is_a_family_of_its_own():
    cfg = load_config(["loss=examples.user_loss:taylor_ce", "confirm.versus=[elf:taylor_ce]"])
    assert cfg.confirm.versus == ("elf:taylor_ce",)


def test_a_configuration_is_in_the_family_it_trains_as():
    assert family_of({"loss.kind": "sce", "loss.sce_alpha": 1.0, "loss.sce_beta": 0.5}) == (
        "poly1",
    )
    assert family_of({"loss.kind": "balanced_softmax"}) == ("logit_adjustment",)
    assert family_of({"lq.method": "self_confidence", "lq.power": 0.0}) == ()


def test_every_departure_from_plain_ce_has_a_family():
    from trainables.params import FAMILY_OF, PLAIN_CE

    assert set(FAMILY_OF) == set(PLAIN_CE) - {"loss.kind"}


def _sequential_pair(rng: np.random.Generator, pair_delta: float) -> tuple[str, Any]:
    """One simulated confirmation with a known truth: sides e (ELF) and f (focal) each beat the
    baseline by 0.02 on average, e by `pair_delta` more than f; per-seed noise sd 0.01 each.
    Rounds as the stage runs them (`next_seeds`, budget 30) until nothing is open; the pair's
    final verdict and interval."""
    draws = {"b": 0.8 + rng.normal(0, 0.01, 30)}
    draws["e"] = draws["b"] + 0.02 + pair_delta + rng.normal(0, 0.01, 30)
    draws["f"] = draws["b"] + 0.02 + rng.normal(0, 0.01, 30)
    tried = {label: 3 for label in draws}
    while True:
        runs = _runs({label: list(v[: tried[label]]) for label, v in draws.items()})
        looked = confirm(runs, [F1], F1, None, resamples=100, versus=[("elf", "focal")], rank={})
        need = next_seeds(looked, tried, budget=30, slots=4)
        grown = {label: max(tried[label], r.stop - 1) for label, r in need.items()}
        if all(grown[label] == tried[label] for label in grown):
            return looked.versus["elf:focal"]["test_macro_f1"]
        tried |= grown


def test_the_head_to_head_keeps_its_error_rate_under_sequential_rounds():
    """A known truth, simulated: with no difference between the sides, a false better/worse of
    the pair is rarer than α (its share α/3 is what it may spend), and its interval covers 0 at
    least 1 − α of the time, however many rounds were looked at; with a difference of 0.02 the
    pair is decided better most of the time."""
    rng = np.random.default_rng(11)
    null = [_sequential_pair(rng, 0.0) for _ in range(120)]
    false = sum(c.verdict in ("better", "worse") for c in null)
    covered = sum(c.delta.low <= 0 <= c.delta.high for c in null)
    assert false / len(null) <= 0.05 and covered / len(null) >= 0.95
    effect = [_sequential_pair(rng, 0.02) for _ in range(60)]
    assert sum(c.verdict == "better" for c in effect) / len(effect) >= 0.6
