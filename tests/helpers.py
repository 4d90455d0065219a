"""Constants shared by test modules (import as `from helpers import ...`)."""

from pathlib import Path

SMALL = {"n_train": 1500, "n_val": 600, "n_test": 300, "reviewers": 80}  # a fast synthetic dataset

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; .ci/run installs it
CHROMIUM_ARGS = [  # headless, and no background traffic on a machine without network
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
