"""The OpenStack Nova review comments shipped beside the project (`NOVA_PATH`), read as a table:
single-task (comment_group) and multi-task (comment_group and manual_rating)."""

from __future__ import annotations

from dataclasses import replace

from trainables.data.presets.registry import PROJECT_ROOT, Preset, register
from trainables.data.table import TableSpec, load_table

NOVA_PATH = "../shared/datasets/nova-review-comments/comments.csv"  # from the project root
# Comment and change attributes; ids, label-like columns (manual_rating, usefulness_computed) and
# the reviewer experience/ownership columns (they drive the weights) are left out on purpose.
NOVA_FEATURES = (
    "line_number",
    "mutual_reviews",
    "review_time",
    "patchset_number",
    "code_churn",
    "file_count",
    "directory_count",
    "is_bug_fix",
    "is_new_file",
    "current_loc",
    "comment_loc",
    "cyclomatic_complexity",
    "comment_volume",
)
NOVA_LOG_FEATURES = tuple(
    f for f in NOVA_FEATURES if f not in ("is_bug_fix", "is_new_file", "comment_volume")
)
# File-level columns feed the package granularity (a file's directory is its package), project-wide
# counts the repository; the subsystem slot copies the package (nearest, ties to the finer).
NOVA_OWNERSHIP = {
    "reviewer_commit_share": {"signal": "aco", "granularity": "package", "norm": "none"},
    "prior_file_review_count": {"signal": "rso", "granularity": "package", "norm": "log_max"},
    "reviewer_coding_experience": {"signal": "aco", "granularity": "repository", "norm": "log_max"},
    "prior_review_count": {"signal": "rso", "granularity": "repository", "norm": "log_max"},
}
NOVA = TableSpec(
    path=str((PROJECT_ROOT / NOVA_PATH).resolve()),  # from any working directory
    label="comment_group",
    text="message",
    features=NOVA_FEATURES,
    ownership=NOVA_OWNERSHIP,
    log_features=NOVA_LOG_FEATURES,
)

register(
    "nova",
    Preset(
        f"OpenStack Nova review comments ({NOVA_PATH}), label comment_group, text message",
        NOVA,
        TableSpec,
        load_table,
        shipped=NOVA_PATH,
    ),
)
register(
    "nova-multitask",
    Preset(
        f"the Nova comments ({NOVA_PATH}) with two tasks: comment_group and manual_rating",
        replace(NOVA, label=("comment_group", "manual_rating")),
        TableSpec,
        load_table,
        shipped=NOVA_PATH,
    ),
)
