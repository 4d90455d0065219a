"""The MLflow UI in headless Chromium shows a search as a parent run with its trials nested under it.

Needs Debian's chromium (`apt-get install -y chromium`); the mirror writes to a real local
`mlflow server` through its public hooks (the same calls the Ray callback makes), so no Ray here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS
from mlflow import MlflowClient
from mlflow_server import LocalServer

from mirrors import MirrorSettings, MlflowMirror
from record import RecordWriter

pytestmark = pytest.mark.browser
SEARCH = "focal-vs-ce"
MAX_EPOCHS = 4
# (trial id, gamma, epochs trained): two complete, one stopped by ASHA at rung 1.
TRIALS = [("a1b2c3d4", 3.0, 4), ("e5f6a7b8", 2.0, 4), ("c9d0e1f2", 0.5, 1)]
HIDDEN_COLUMNS = ["Dataset", "Source", "Models"]
RUN_NAME_COLUMN = '[role="gridcell"][col-id="attributes.`Run Name`"]'


def f1_at(gamma: float, epoch: int) -> float:
    return round(gamma * (epoch + 1) / 16, 4)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    with LocalServer(tmp_path_factory.mktemp("server")) as local:
        yield local


def log_search(url: str, output_dir: Path) -> str:
    """A search of three trials mirrored from its record; returns the experiment id."""
    record = RecordWriter(output_dir / "record.jsonl")
    for trial_id, gamma, epochs in TRIALS:
        record.write({"event": "start", "trial_id": trial_id, "params": {"loss.gamma": gamma}})
        for epoch in range(epochs):
            metrics = {"epoch": epoch, "val_macro_f1": f1_at(gamma, epoch)}
            record.write(
                {"event": "result", "trial_id": trial_id, "epoch": epoch, "metrics": metrics}
            )
        state = "completed" if epochs == MAX_EPOCHS else "stopped_early"
        record.write({"event": "end", "trial_id": trial_id, "state": state, "epochs": epochs})
    record.close()
    settings = MirrorSettings(
        url, "ui-exp", SEARCH, output_dir, config={"space": "toy"}, max_epochs=MAX_EPOCHS
    )
    mirror = MlflowMirror(settings)
    mirror.start()
    assert mirror.close()
    return MlflowClient(url).get_experiment_by_name("ui-exp").experiment_id


def set_columns(page, show: list[str], hide: list[str]) -> None:
    """Tick / untick columns in the runs table's "Columns" menu."""
    page.get_by_text("Columns", exact=True).first.click()
    for title, wanted in [(t, True) for t in show] + [(t, False) for t in hide]:
        node = page.locator(".du-bois-light-tree-treenode").filter(
            has=page.locator(f'span[title="{title}"]')
        )
        checked = "checkbox-checked" in (
            node.locator("span[class*=checkbox]").first.get_attribute("class") or ""
        )
        if checked != wanted:
            node.locator("span[class*=checkbox]").first.click()
    page.keyboard.press("Escape")


def test_runs_table_shows_parent_with_nested_trials(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    experiment_id = log_search(server.url, tmp_path / "out")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 420})
        page.goto(f"{server.url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
        parent = page.locator(RUN_NAME_COLUMN).filter(has_text=SEARCH)
        expect(parent).to_be_visible(timeout=30_000)
        close_assistant = page.get_by_label("Close")
        if close_assistant.count():
            close_assistant.first.click()
        for trial_id, _, _ in TRIALS:  # nested: hidden until the parent row is expanded
            expect(page.get_by_text(f"trial_{trial_id}")).to_have_count(0)
        parent.locator("button").first.click()
        for trial_id, _, _ in TRIALS:
            expect(
                page.locator(RUN_NAME_COLUMN).filter(has_text=f"trial_{trial_id}")
            ).to_be_visible()
        set_columns(page, show=["val_macro_f1", "end_state", "loss.gamma"], hide=HIDDEN_COLUMNS)
        header = page.locator('[role="columnheader"]').filter(has_text="val_macro_f1")
        expect(header.first).to_be_visible()
        cells = page.locator('[role="gridcell"][col-id="metrics.`val_macro_f1`"]')
        expect(cells).to_have_count(len(TRIALS) + 1)
        shown = {text.strip() for text in cells.all_inner_texts()}
        latest = {str(f1_at(gamma, epochs - 1)) for _, gamma, epochs in TRIALS}
        assert latest <= shown
        states = page.locator('[role="gridcell"][col-id="tags.`end_state`"]').all_inner_texts()
        assert sorted(t.strip() for t in states) == [
            "completed",
            "completed",
            "completed",
            "stopped_early",
        ]
        page.screenshot(path=str(tmp_path / "mlflow-ui.png"))
        browser.close()
