"""Searchers: a Ray Tune `Searcher` over an Optuna study (TPE or random, seeded), or Ray's generator
for a space with a grid.

`StudySearcher` drives the study through Optuna's ask/tell interface. Ray's OptunaSearch would tell
a trial that ASHA stopped as COMPLETE with its partial score, which poisons TPE with low-budget
values posing as finished ones; this searcher tells:
  COMPLETE (value = best epoch's metric) when the trial trained the full budget,
  PRUNED   when the scheduler stopped it earlier (its per-epoch values stay as intermediates),
  FAIL     when it errored or its metric is not finite.
It also collapses equivalent configurations (`spaces.canonical`) before they cost a trial.

Ray 2.60's OptunaSearch takes metric and mode lists for several objectives, with the same
COMPLETE-for-stopped flaw. With several objectives (search.objectives) the study is multi-objective, its directions recorded
in it (optuna-dashboard draws its Pareto front): COMPLETE tells the objectives' values at the
trial's best epoch (`best_epoch`, by search.metric: the epoch the report counts), and no
intermediate values are written (Optuna keeps them for single-objective pruning only). The sampler
is Optuna's TPE, multi-objective as is (MOTPE); `search.algorithm=nsga2` (NSGA-II, generations of
NSGA2_POPULATION) is the alternative `python -m benchmarks front` measures against it.

Ray tells the searcher of a result or an end before its callbacks (the record), so a kill between
the two would leave Optuna holding what the record lacks. Every intermediate value and end is
therefore written to the study at the searcher's next call or at Ray's next snapshot of it,
whichever comes first: by then the record (the source of truth) already has it.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher

from spaces import Space
from trainables.canonical import DataFacts, canonical
from trainables.errors import UserInputError
from trainables.objective import Objective

MAX_REDRAWS = 20  # asks per suggestion; the last one runs even if it repeats an earlier trial
NSGA2_POPULATION = 8  # search.algorithm=nsga2: trials per generation (4 generations in 32 trials)


class StudySearcher(Searcher):
    """Asks `study` for each Ray trial (the space's define-by-run function) and tells it each end
    as COMPLETE / PRUNED / FAIL, as described above."""

    def __init__(
        self,
        space: Space,
        study: optuna.Study,
        storage: BaseStorage,
        *,
        metric: str,
        mode: str,
        max_epochs: int,
        facts: DataFacts | None = None,
        objectives: tuple[Objective, ...] = (),
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self._objectives = objectives if len(objectives) > 1 else ()  # () : single-objective
        self._space = space
        self._study = study
        self._storage = storage  # the study's; intermediate values are written through it
        self._study_id = storage.get_study_id_from_name(study.study_name)
        self._max_epochs = max_epochs
        self._best_key = f"best_{metric}"
        self._facts = facts  # the data's equivalences; left out of Ray's snapshots (see save)
        self._trials: dict[str, int] = {}  # Ray trial id -> its Optuna trial number
        self._ended: set[str] = set()  # Ray trial ids whose end is told or queued
        self._by_config: dict[str, str] = {}  # canonical config -> first Ray trial id
        self._values: dict[str, Any] = {}  # Ray trial id -> value(s) told as COMPLETE
        self._at_best: dict[str, list[float]] = {}  # Ray trial id -> objectives at its best epoch
        self._steps: dict[str, set[int]] = {}  # Ray trial id -> steps reported to Optuna
        self._deferred: list[tuple] = []  # study writes waiting for the record (see module doc)

    @property
    def study(self) -> optuna.Study:
        return self._study

    def suggest(self, trial_id: str) -> dict | None:
        """A new Optuna trial's config; one equivalent to an earlier trial's is told that trial's
        value instead of running (see `_repeat`), up to MAX_REDRAWS asks."""
        self._flush()
        for attempt in range(MAX_REDRAWS):
            trial = self._study.ask()
            constants = self._space.define_by_run(trial)  # suggests on `trial`, parents first
            config = {**trial.params, **constants}
            earlier = self._by_config.setdefault(config_key(config, self._facts), trial_id)
            if earlier != trial_id and attempt < MAX_REDRAWS - 1:
                self._repeat(trial, earlier)
                continue
            trial.set_user_attr("ray_trial_id", trial_id)
            self._trials[trial_id] = trial.number
            return config
        return None  # not reached: the last ask always runs

    def _repeat(self, trial: optuna.Trial, earlier: str) -> None:
        """Tell Optuna the earlier equivalent trial's value, or FAIL while that one is unfinished."""
        trial.set_user_attr("duplicate_of", earlier)
        value = self._values.get(earlier)
        if value is None:
            self._study.tell(trial, state=TrialState.FAIL)
        else:
            self._study.tell(trial, value)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._flush()
        if trial_id in self._trials and trial_id not in self._ended:
            self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict) -> None:
        """Queue the epoch's metric as an intermediate value, once per step; with several
        objectives, keep their values at the best epoch instead."""
        if self._objectives:
            if "epoch" in result and result.get("epoch") == result.get("best_epoch"):
                self._at_best[trial_id] = [_value(result, o.metric) for o in self._objectives]
            return
        step, metric = result.get("training_iteration"), result.get(self.metric)
        steps = self._steps.setdefault(trial_id, set())
        if step is None or step in steps or metric is None or not math.isfinite(float(metric)):
            return
        steps.add(step)
        self._deferred.append(("report", trial_id, float(metric), int(step)))

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        self._flush()
        if trial_id in self._ended or trial_id not in self._trials:
            return
        if result and not error:  # Ray passes a stopping trial's last result only here
            self._report(trial_id, result)
        state, value = outcome(result, error, self._max_epochs, self._best_key)
        if state == TrialState.COMPLETE and self._objectives:
            state, value = values_outcome(self._at_best.get(trial_id))
        if state == TrialState.COMPLETE:
            self._values[trial_id] = value
        self._deferred.append(("tell", trial_id, value, state))
        self._ended.add(trial_id)

    def save(self, checkpoint_path: str) -> None:
        """Ray's snapshot of the searcher (also its last, at the search's end): flush, then write
        the bookkeeping as JSON; the study itself is in its journal."""
        self._flush()
        state = {
            "trials": self._trials,
            "ended": sorted(self._ended),
            "by_config": self._by_config,
            "values": self._values,
            "at_best": self._at_best,
            "steps": {k: sorted(v) for k, v in self._steps.items()},
        }
        Path(checkpoint_path).write_text(json.dumps(state), encoding="utf-8")

    def restore(self, checkpoint_path: str) -> None:
        """On resume: the bookkeeping `save` wrote; study and facts stay this instance's."""
        state = json.loads(Path(checkpoint_path).read_text(encoding="utf-8"))
        self._trials = state["trials"]
        self._ended = set(state["ended"])
        self._by_config = state["by_config"]
        self._values = state["values"]
        self._at_best = state.get("at_best", {})
        self._steps = {k: set(v) for k, v in state["steps"].items()}
        self._deferred = []

    def _flush(self) -> None:
        """Write the deferred intermediate values and ends to the study, in order, skipping trials
        whose end the journal already holds (after a SIGKILL, Ray restores this searcher from a
        snapshot that may be older than the journal: the journal is the truth, nothing is told
        twice). One journal read per flush: a trial's tell is its last deferred write."""
        if not self._deferred:
            return
        frozen = self._study.get_trials(deepcopy=False)
        for kind, trial_id, value, extra in self._deferred:
            number = self._trials[trial_id]
            if frozen[number].state.is_finished():
                continue
            if kind == "report":
                trial = self._storage.get_trial_id_from_study_id_trial_number(
                    self._study_id, number
                )
                self._storage.set_trial_intermediate_value(trial, extra, value)
            else:
                self._study.tell(number, value, state=extra)
        self._deferred.clear()


def _value(result: dict, metric: str) -> float:
    value = result.get(metric)
    return float(value) if isinstance(value, int | float) else math.nan


def values_outcome(values: list[float] | None) -> tuple[TrialState, list[float] | None]:
    """A full-budget trial's state and values in a multi-objective study: COMPLETE with the
    objectives' values at its best epoch, FAIL when one is missing or not finite."""
    if values is None or not all(math.isfinite(v) for v in values):
        return TrialState.FAIL, None
    return TrialState.COMPLETE, list(values)


def config_key(config: dict[str, Any], facts: DataFacts | None = None) -> str:
    """The canonical form of `config` as text; a config that is invalid as written gets its own
    key, so it is not merged with anything and its trial fails with the error it has."""
    try:
        return json.dumps(canonical(config, True, facts), sort_keys=True, default=str)
    except UserInputError as e:
        return f"invalid: {e}"


def outcome(
    result: dict | None, error: bool, max_epochs: int, best_key: str
) -> tuple[TrialState, float | None]:
    """The Optuna state and value for a trial that ended with `result` (its last report)."""
    if error or not result:
        return TrialState.FAIL, None
    value = result.get(best_key, result.get(best_key.removeprefix("best_")))
    if value is None or not math.isfinite(float(value)):
        return TrialState.FAIL, None
    if int(result.get("epoch", -1)) + 1 < max_epochs:
        return TrialState.PRUNED, None
    return TrialState.COMPLETE, float(value)


@dataclass(frozen=True)
class SearcherSpec:
    """What every searcher needs; `study_path` is the Optuna journal file (inspectable afterwards)."""

    metric: str
    mode: str
    seed: int
    max_epochs: int
    max_concurrent: int
    study_path: str
    study_name: str
    facts: DataFacts | None = None
    objectives: tuple[Objective, ...] = ()  # two or more: a multi-objective study


def make_searcher(algorithm: str, space: Space, spec: SearcherSpec) -> Searcher:
    """The searcher named by `search.algorithm`, or "grid" (a registry; config rejects others)."""
    return SEARCHERS[algorithm](space, spec)


def load_study(path: str | Path, name: str) -> optuna.Study:
    """The Optuna study a search wrote to its journal file."""
    return optuna.load_study(study_name=name, storage=_journal(path))


def _journal(path: str | Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def open_study(
    space: Space, spec: SearcherSpec, sampler: optuna.samplers.BaseSampler, storage: BaseStorage
) -> optuna.Study:
    """The study in `storage`, created or (on resume) reopened; the space's points_to_evaluate
    are enqueued only into a new study, so a resume does not ask them again."""
    study = optuna.create_study(
        storage=storage,
        sampler=sampler,
        pruner=optuna.pruners.NopPruner(),  # the scheduler (ASHA) decides when a trial stops
        study_name=spec.study_name,
        directions=study_directions(spec),
        load_if_exists=True,
    )
    if len(spec.objectives) > 1 and study.metric_names is None:  # the dashboard's axis names
        with warnings.catch_warnings():  # experimental in Optuna: a warning, not a change
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.metric for o in spec.objectives])
    if not study.get_trials(deepcopy=False):
        for point in space.points():
            study.enqueue_trial(point)
    return study


def study_directions(spec: SearcherSpec) -> list[str]:
    """Optuna's direction per objective: the search objectives', else search.mode's."""
    modes = [o.direction for o in spec.objectives] if len(spec.objectives) > 1 else [spec.mode]
    return ["minimize" if mode == "min" else "maximize" for mode in modes]


def _study_searcher(
    space: Space, s: SearcherSpec, sampler: optuna.samplers.BaseSampler
) -> Searcher:
    storage = _journal(s.study_path)
    searcher = StudySearcher(
        space,
        open_study(space, s, sampler, storage),
        storage,
        metric=s.metric,
        mode=s.mode,
        max_epochs=s.max_epochs,
        facts=s.facts,
        objectives=s.objectives,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent)


def _optuna(space: Space, s: SearcherSpec) -> Searcher:
    return _study_searcher(space, s, optuna.samplers.TPESampler(seed=s.seed))


def _random(space: Space, s: SearcherSpec) -> Searcher:
    return _study_searcher(space, s, optuna.samplers.RandomSampler(seed=s.seed))


def _nsga2(space: Space, s: SearcherSpec) -> Searcher:
    """NSGA-II with NSGA2_POPULATION trials a generation (Optuna's 50 would leave a 32-trial
    search random): the alternative to multi-objective TPE that `benchmarks front` measures."""
    sampler = optuna.samplers.NSGAIISampler(population_size=NSGA2_POPULATION, seed=s.seed)
    return _study_searcher(space, s, sampler)


class CanonicalGrid(BasicVariantGenerator):
    """Ray's generator over `search.param_space` (every grid point, num_samples times) that skips
    a variant `canonical` calls equal to an earlier one before it becomes a trial, as the Optuna
    searchers do: e.g. two warm-up fractions whose ramps round to the same epochs, or a repeat of
    a point whose other keys are constants (trials share one seed, so it would train the same). `merged` says
    which, one sentence each; it travels with the generator's state through a resume."""

    def __init__(self, *args: Any, facts: DataFacts | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._facts = facts  # the data's equivalences; left out of Ray's snapshots
        self._by_config: dict[str, str] = {}  # canonical config -> first trial id
        self.merged: list[str] = []

    def next_trial(self) -> Any:
        while True:
            trial = super().next_trial()
            if trial is None:
                return None
            earlier = self._by_config.setdefault(
                config_key(trial.config, self._facts), trial.trial_id
            )
            if earlier == trial.trial_id:
                return trial
            self.on_trial_complete(trial.trial_id)  # never started: frees its slot
            self.merged.append(
                f"grid point {_point(trial.config)} trains as trial {earlier}'s: not run"
            )

    def get_state(self) -> Any:
        state = super().get_state()
        return state if not state else {k: v for k, v in state.items() if k != "_facts"}

    def set_state(self, state: Any) -> None:
        facts = self._facts
        super().set_state(state)
        self._facts = facts


def _point(config: dict[str, Any]) -> str:
    """A variant as `k=v, ...` of its set keys (the constants of the search left out)."""
    skip = ("train.max_epochs", "train.checkpoint_every_s")
    return ", ".join(f"{k}={v}" for k, v in config.items() if v is not None and k not in skip)


def _grid(space: Space, s: SearcherSpec) -> Searcher:
    """The canonical grid over `search.param_space`: every grid point num_samples times, each
    distinct configuration once."""
    return CanonicalGrid(
        points_to_evaluate=space.points() or None,
        max_concurrent=s.max_concurrent,
        random_state=s.seed,
        facts=s.facts,
    )


SEARCHERS = {"optuna": _optuna, "random": _random, "nsga2": _nsga2, "grid": _grid}
