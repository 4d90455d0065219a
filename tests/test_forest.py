"""The confirmation's forest plot (reports.plots) and where the report puts it.

Unit tests draw hand-built Confirmations (every verdict, an infinite bound, a metric without a
margin or test-row part) and read the drawn artists back; the report tests write a search folder
whose confirmation runs are hand-written with known predictions (`confirmed_run`, also used by
the browser test).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from sklearn.metrics import f1_score
from test_report import STANDARD_TRIALS, write_run

from reports import write_report
from reports.analysis import analyse
from reports.confirmation import (
    BETTER,
    EQUIVALENT,
    UNDECIDED,
    WORSE,
    Comparison,
    Config,
    Confirmation,
    Interval,
    comparison_table,
)
from reports.load import load_run
from reports.objectives import Objective
from reports.plots import PAD, VERDICT_STYLE, forest_figure, forest_limits, forest_png
from reports.write import confirmation

INF = math.inf
F1, ECE = Objective("test_macro_f1", "max"), Objective("test_ece", "min")


def comparison(
    metric: str, estimate: float, seeds_part: float, rows_part: float, **kw
) -> Comparison:
    """A comparison whose interval is estimate ± (seeds_part + rows_part, NaN counting 0)."""
    half = seeds_part + (0.0 if math.isnan(rows_part) else rows_part)
    delta = Interval(estimate, estimate - half, estimate + half, seeds_part, rows_part)
    return Comparison(metric, delta, **{"seeds": 8, "verdict": UNDECIDED} | kw)


def hand_confirmation() -> Confirmation:
    """Four candidates on two metrics: test_macro_f1 without a margin, test_ece with ±0.01 and no
    test-row part; c4 has 1 paired seed (infinite bounds) on both."""
    f1 = {
        "c1": comparison(F1.metric, 0.04, 0.01, 0.005, verdict=BETTER),
        "c2": comparison(F1.metric, -0.05, 0.02, 0.01, verdict=WORSE),
        "c3": comparison(F1.metric, 0.002, 0.02, 0.01),
        "c4": comparison(F1.metric, 0.01, INF, 0.01, seeds=1),
    }
    ece = {
        "c1": comparison(ECE.metric, -0.002, 0.003, math.nan, verdict=EQUIVALENT, margin=0.01),
        "c2": comparison(ECE.metric, 0.03, 0.01, math.nan, verdict=WORSE, margin=0.01),
        "c3": comparison(ECE.metric, -0.004, 0.012, math.nan, margin=0.01),
        "c4": comparison(ECE.metric, 0.0, INF, math.nan, seeds=1, margin=0.01),
    }
    comparisons = {c: {F1.metric: f1[c], ECE.metric: ece[c]} for c in f1}
    base = Config("b", "baseline", {})
    return Confirmation([base], base, (F1, ECE), F1, comparisons, 0.05, "", 1)


def drawn(ax, gid: str) -> list:
    return [a for a in [*ax.collections, *ax.lines, *ax.patches] if a.get_gid() == gid]


def test_forest_limits_span_zero_margins_and_every_finite_end() -> None:
    rows = [
        comparison(F1.metric, 0.02, 0.02, 0.01),  # [-0.01, 0.05], seeds part [0.0, 0.04]
        comparison(F1.metric, -0.03, INF, 0.01),  # only its estimate is finite
    ]
    low, high = -0.03, 0.05  # by hand: the smallest and largest finite value (margin ±0.01 inside)
    pad = PAD * (high - low)
    assert forest_limits(rows, 0.01) == pytest.approx((low - pad, high + pad))
    assert forest_limits([comparison(F1.metric, 0.0, 0.0, 0.0)], None) == (-0.01, 0.01)
    margin_pad = PAD * 0.04  # the band ±0.02 alone spans the view
    assert forest_limits([comparison(F1.metric, 0.0, 0.0, 0.0)], 0.02) == pytest.approx(
        (-0.02 - margin_pad, 0.02 + margin_pad)
    )


def test_forest_draws_each_interval_verdict_and_infinite_bound() -> None:
    """Per panel and candidate, read back from the figure: the thin bar spans the interval and the
    thick one the seeds part (clipped to the view where infinite, with a triangle on each edge),
    the point sits at Δ, the right-hand label names verdict and seeds in the verdict's colour;
    the ±δ band only where there is a margin."""
    c = hand_confirmation()
    fig = forest_figure(c)
    panels = [ax for ax in fig.axes if drawn(ax, "delta")]
    assert [ax.get_title(loc="left").split(" ")[0] for ax in panels] == [F1.metric, ECE.metric]
    for ax, objective in zip(panels, (F1, ECE), strict=True):
        rows = [(label, m[objective.metric]) for label, m in c.comparisons.items()]
        low, high = ax.get_xlim()
        assert (low, high) == pytest.approx(forest_limits([x for _, x in rows], rows[0][1].margin))
        ys = {t.get_text(): t.get_position()[1] for t in ax.get_yticklabels()}
        assert sorted(ys, key=ys.get, reverse=True) == ["c1", "c2", "c3", "c4"]  # top to bottom
        whole = {
            round(s[0][1]): (s[0][0], s[1][0])
            for a in drawn(ax, "interval")
            for s in a.get_segments()
        }
        seeds = {
            round(s[0][1]): (s[0][0], s[1][0]) for a in drawn(ax, "seeds") for s in a.get_segments()
        }
        points = {round(y): x for a in drawn(ax, "delta") for x, y in a.get_offsets()}
        for label, x in rows:
            y, d = ys[label], x.delta
            clip = (max(d.low, low), min(d.high, high))
            assert whole[y] == pytest.approx(clip)
            assert seeds[y] == pytest.approx(
                (max(d.estimate - d.seeds_part, low), min(d.estimate + d.seeds_part, high))
            )
            assert points[y] == pytest.approx(d.estimate)
        arrows = sorted((x, round(y)) for a in drawn(ax, "unbounded") for x, y in a.get_offsets())
        assert arrows == [(low, ys["c4"]), (high, ys["c4"])]
        twin = next(a for a in fig.axes if a is not ax and a.bbox.bounds == ax.bbox.bounds)
        labels = {round(t.get_position()[1]): t for t in twin.get_yticklabels()}
        first = "equivalent" if objective is ECE else "better"
        assert [labels[ys[label]].get_text() for label, _ in rows] == [
            f"{first}, 8 paired seeds",
            "worse, 8 paired seeds",
            "undecided, 8 paired seeds",
            "undecided, 1 paired seed (unbounded)",
        ]
        for label, x in rows:
            colour = labels[ys[label]].get_color()
            assert to_rgb(colour) == to_rgb(VERDICT_STYLE[x.verdict][0])
        band = drawn(ax, "margin")
        if objective is ECE:
            (patch,) = band
            start = patch.get_x()
            assert (start, start + patch.get_width()) == pytest.approx((-0.01, 0.01))
        else:
            assert band == []


def test_forest_png_shows_every_verdict_colour_and_nothing_without_comparisons() -> None:
    from PIL import Image

    c = hand_confirmation()
    png = forest_png(c)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert image.shape[1] == 900
    pixels = {tuple(p) for p in image.reshape(-1, 3)}
    for colour, _ in VERDICT_STYLE.values():
        assert tuple(round(255 * v) for v in to_rgb(colour)) in pixels, colour
    c.comparisons = {}
    assert forest_figure(c) is None and forest_png(c) is None


# ----- the report ---------------------------------------------------------------------------------

LABELS = [0, 1, 2] * 100  # the test split: 300 rows
LONG_SETTING = "x" * 150  # an unbroken value: the settings cell must wrap it
CONFIRMED = {  # source trial -> (role, share of rows predicted right, test_ece, paired seeds)
    "t10": ("baseline", 0.80, 0.100, 8),
    "t2": ("candidate", 0.95, 0.060, 8),
    "t3": ("candidate", 0.60, 0.150, 8),
    "t5": ("candidate", 0.80, 0.100, 8),
    "t4": ("candidate", 0.80, 0.100, 1),
}
MERGED = ["trial t6 trains as trial t2 does: confirmed once, as that"]


def predictions(right: float, seed: int, source: str) -> list[int]:
    """Per row the true label with probability `right`, else the next class (seeded)."""
    rng = np.random.default_rng([seed, sum(map(ord, source))])
    hit = rng.random(len(LABELS)) < right
    return [y if h else (y + 1) % 3 for y, h in zip(LABELS, hit, strict=True)]


def confirmation_events() -> list[dict]:
    """Confirmation runs of CONFIRMED as search/confirm.py records them, and one look."""
    events = []
    for source, (role, right, ece, seeds) in CONFIRMED.items():
        params = {"loss.kind": "ce" if role == "baseline" else "focal", "train.lr": 1e-3}
        if source == "t2":
            params |= {"loss.gamma": 2.0, "loss.class_weights": LONG_SETTING}
        for seed in range(1, seeds + 1):
            rid = f"confirm_{source}_s{seed}"
            preds = predictions(right, seed, source)
            metrics = {
                "test_macro_f1": f1_score(LABELS, preds, average="macro"),
                "test_ece": ece + 0.0005 * math.sin(seed),
                "val_macro_f1": right,
            }
            events += [
                {"event": "start", "trial_id": rid, "params": params | {"seed": seed}}
                | {"stage": "confirmation", "source": source, "role": role},
                {"event": "result", "trial_id": rid, "epoch": 2, "predictions": preds}
                | {"metrics": metrics},
                {"event": "end", "trial_id": rid, "state": "completed", "epochs": 3},
            ]
    look = {"event": "look", "trial_id": "look", "epoch": 33, "metric": "test_macro_f1"}
    return [*events, look | {"figures": {}, "merged": MERGED}]


def confirmed_run(folder: Path) -> Path:
    """STANDARD_TRIALS, then CONFIRMED's confirmation runs, with data.json's test labels."""
    extra = [json.dumps(e) for e in confirmation_events()]
    out = write_run(
        folder, STANDARD_TRIALS, objectives=["val_macro_f1:max", "val_ece:min"], extra_lines=extra
    )
    (out / "record.jsonl").write_text((out / "record.jsonl").read_text() + "\n")
    facts = {"classes": ["a", "b", "c"], "train_counts": [5, 3, 9], "test_labels": LABELS}
    (out / "data.json").write_text(json.dumps(facts))
    return out


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return confirmed_run(tmp_path_factory.mktemp("run") / "run")


def test_the_forest_plot_shows_the_paired_deltas(confirmed: Path) -> None:
    """The plotted Δ of each candidate on test_macro_f1 is the mean over paired seeds of its F1
    minus the baseline's, computed here with scikit-learn."""
    run = load_run(confirmed)
    c = confirmation(run, analyse(run))
    ax = next(a for a in forest_figure(c).axes if a.get_title(loc="left").startswith(F1.metric))
    ys = {t.get_text(): round(t.get_position()[1]) for t in ax.get_yticklabels()}
    points = {round(y): x for a in drawn(ax, "delta") for x, y in a.get_offsets()}
    for source, (role, right, _, seeds) in CONFIRMED.items():
        if role == "baseline":
            continue
        base = CONFIRMED["t10"][1]
        want = np.mean(
            [
                f1_score(LABELS, predictions(right, s, source), average="macro")
                - f1_score(LABELS, predictions(base, s, "t10"), average="macro")
                for s in range(1, seeds + 1)
            ]
        )
        assert points[ys[source]] == pytest.approx(want)
    verdicts = {label: m[F1.metric].verdict for label, m in c.comparisons.items()}
    assert (verdicts["t2"], verdicts["t3"], verdicts["t4"]) == (BETTER, WORSE, UNDECIDED)
    assert c.comparisons["t5"][ECE.metric].verdict == EQUIVALENT


def test_the_report_carries_the_forest_plot_tables_and_merges(confirmed: Path) -> None:
    out = write_report(confirmed)
    png = (out / "verdicts.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert "verdicts.png" in json.loads((out / "summary.json").read_text())["plots"]
    page = (out / "pareto.html").read_text()
    (uri,) = re.findall(
        r'<img class="verdicts" alt="verdicts" src="data:image/png;base64,([^"]+)"', page
    )
    assert base64.b64decode(uri) == png
    md = (out / "pareto.md").read_text()
    assert md.count("![verdicts](verdicts.png)") == 1
    merged = f"Merged before confirming (identical training): {MERGED[0]}."
    assert md.count(merged) == 1 and page.count(merged) == 1
    run = load_run(confirmed)
    rows = comparison_table(confirmation(run, analyse(run)))
    with (out / "comparisons.csv").open(newline="") as f:
        written = list(csv.DictReader(f))
    assert [(r["config"], r["metric"], r["verdict"]) for r in written] == [
        (r["config"], r["metric"], r["verdict"]) for r in rows
    ]
    assert len(written) == 4 * 2  # 4 candidates × (test_macro_f1, test_ece)
    assert "| config | against | metric | Δ [interval] |" in md


def test_a_report_without_confirmation_drops_the_stale_plot_and_tables(tmp_path: Path) -> None:
    folder = confirmed_run(tmp_path / "run")
    out = write_report(folder)
    assert {"verdicts.png", "comparisons.csv", "confirmation.csv"} <= {
        p.name for p in out.iterdir()
    }
    write_run(folder, STANDARD_TRIALS, objectives=["val_macro_f1:max", "val_ece:min"])
    out = write_report(folder)
    names = {p.name for p in out.iterdir()}
    assert not names & {"verdicts.png", "comparisons.csv", "confirmation.csv"}
    assert "verdicts.png" not in json.loads((out / "summary.json").read_text())["plots"]
    assert 'class="verdicts"' not in (out / "pareto.html").read_text()
