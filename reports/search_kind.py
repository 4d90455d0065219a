"""Which search produced the front: the sampler, what it optimised and what stopped trials early,
read from the search's config.yaml (the report says it beside the front).

The objectives are resolved as the search resolved them (`reports.objectives.searched_objectives`):
search.objectives, else the report's objectives under a multi-objective scheduler, else
search.metric alone.
"""

from __future__ import annotations

from reports.load import Run
from reports.objectives import searched_objectives
from trainables.errors import UserInputError
from trainables.objective import Objective

SAMPLERS = {
    "optuna": "Optuna TPE",
    "random": "random sampling",
    "nsga2": "Optuna NSGA-II",
}  # search.algorithm


def _names(objectives: tuple[Objective, ...]) -> str:
    return ", ".join(str(o) for o in objectives)


def front_search(run: Run) -> str:
    """One sentence: e.g. "Optuna TPE, multi-objective on val_macro_f1:max, val_ece:min; early
    stopping: MOASHA on the same objectives". "" when config.yaml says nothing of the search."""
    algorithm, scheduler = run.setting("search.algorithm"), run.setting("scheduler.name")
    metric, mode = run.setting("search.metric"), run.setting("search.mode")
    if algorithm is None or metric is None:
        return ""
    primary = Objective(str(metric), str(mode or "max"))
    try:
        objectives = searched_objectives(
            run.setting("search.objectives") or (),
            run.setting("report.objectives") or (),
            primary,
            str(scheduler),
        )
    except UserInputError:
        return ""
    sampler = SAMPLERS.get(str(algorithm), str(algorithm))
    kind = "multi-objective" if len(objectives) > 1 else "single-objective"
    stopping = {
        "asha": f"ASHA on {primary}",
        "moasha": "MOASHA on the same objectives",
        "fifo": "none (every trial trains the full budget)",
    }.get(str(scheduler), str(scheduler))
    return f"{sampler}, {kind} on {_names(objectives)}; early stopping: {stopping}"
