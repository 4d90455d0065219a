"""Searchers: Optuna (TPE, seeded) with honest bookkeeping under ASHA, or random/grid variants.

Ray's OptunaSearch tells Optuna a trial that ASHA stopped as COMPLETE with its partial score, which
poisons TPE with low-budget values posing as finished ones. `HonestOptunaSearch` tells:
  COMPLETE (value = best epoch's metric) when the trial trained the full budget,
  PRUNED   when the scheduler stopped it earlier (its per-epoch values stay as intermediates),
  FAIL     when it errored or its metric is not finite.
It also collapses equivalent configurations (`spaces.canonical`) before they cost a trial.

Ray tells the searcher of a result or an end before its callbacks (the record), so a kill between
the two would leave Optuna holding what the record lacks. Every intermediate value and end is
therefore written to the study at the searcher's next call or at Ray's next snapshot of it,
whichever comes first: by then the record (the source of truth) already has it.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from spaces import Space
from trainables.canonical import TrainFacts, canonical
from trainables.errors import UserInputError

log = logging.getLogger(__name__)
MAX_REDRAWS = 20  # asks per suggestion before running a repeat anyway


class HonestOptunaSearch(OptunaSearch):
    """OptunaSearch that maps a trial's end to COMPLETE / PRUNED / FAIL as described above."""

    def __init__(
        self,
        *args: Any,
        max_epochs: int,
        best_key: str,
        facts: TrainFacts | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._max_epochs = max_epochs
        self._best_key = best_key
        self._facts = facts  # the data's equivalences; left out of Ray's snapshots (see save)
        self._by_config: dict[str, str] = {}  # canonical config -> first Ray trial id
        self._values: dict[str, float] = {}  # Ray trial id -> value told as COMPLETE
        self._steps: dict[str, set[int]] = {}  # Ray trial id -> steps reported to Optuna
        self._deferred: list[tuple] = []  # study writes waiting for the record (see module doc)

    def suggest(self, trial_id: str) -> dict | None:
        """Ask Optuna; a config equivalent to an earlier trial's costs no trial (see `_repeat`)."""
        self._flush()
        for _ in range(MAX_REDRAWS):
            config = super().suggest(trial_id)
            ot_trial = self._ot_trials[trial_id]
            key = config_key(config, self._facts)
            earlier = self._by_config.get(key)
            if earlier is None:
                self._by_config[key] = trial_id
                ot_trial.set_user_attr("ray_trial_id", trial_id)
                return config
            self._repeat(self._ot_trials.pop(trial_id), earlier)
        return config

    def _repeat(self, ot_trial: optuna.Trial, earlier: str) -> None:
        """Tell Optuna the earlier equivalent trial's value, or FAIL while that one is unfinished."""
        ot_trial.set_user_attr("duplicate_of", earlier)
        value = self._values.get(earlier)
        if value is None:
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        else:
            self._ot_study.tell(ot_trial, value)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._flush()
        if trial_id not in self._completed_trials and trial_id in self._ot_trials:
            self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict) -> None:
        """Queue the epoch's metric as an intermediate value, once per step."""
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
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if result and not error:  # Ray passes a stopping trial's last result only here
            self._report(trial_id, result)
        state, value = outcome(result, error, self._max_epochs, self._best_key)
        if state == TrialState.COMPLETE:
            self._values[trial_id] = value
        self._deferred.append(("tell", trial_id, value, state))
        self._completed_trials.add(trial_id)

    def save(self, checkpoint_path: str) -> None:
        """Ray's snapshot of the searcher (also its last, at the search's end): flush, then save."""
        self._flush()
        facts = self.__dict__.pop("_facts")  # the data stays out of every 2-s snapshot
        try:
            super().save(checkpoint_path)
        finally:
            self._facts = facts

    def _flush(self) -> None:
        """Write the deferred intermediate values and ends to the study, in order, skipping trials
        whose end the journal already holds (after a SIGKILL, Ray restores this searcher from a
        snapshot that may be older than the journal: the journal is the truth, nothing is told
        twice). One journal read per flush: a trial's tell is its last deferred write."""
        if not self._deferred:
            return
        frozen = self._ot_study.get_trials(deepcopy=False)
        for kind, trial_id, value, extra in self._deferred:
            ot_trial = self._ot_trials[trial_id]
            if frozen[ot_trial.number].state.is_finished():
                continue
            if kind == "report":
                ot_trial.report(value, extra)
            else:
                self._ot_study.tell(ot_trial, value, state=extra)
        self._deferred.clear()


def config_key(config: dict[str, Any], facts: TrainFacts | None = None) -> str:
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
    facts: TrainFacts | None = None


def make_searcher(algorithm: str, space: Space, spec: SearcherSpec) -> Searcher:
    """The searcher named by `search.algorithm` (a registry; unknown names are caught in config)."""
    return SEARCHERS[algorithm](space, spec)


def load_study(path: str | Path, name: str) -> optuna.Study:
    """The Optuna study a search wrote to its journal file."""
    return optuna.load_study(study_name=name, storage=_journal(path))


def _journal(path: str | Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def _optuna(space: Space, s: SearcherSpec) -> Searcher:
    searcher = HonestOptunaSearch(
        space=space.define_by_run,
        metric=s.metric,
        mode=s.mode,
        points_to_evaluate=space.points() or None,
        sampler=optuna.samplers.TPESampler(seed=s.seed),
        storage=_journal(s.study_path),
        study_name=s.study_name,
        max_epochs=s.max_epochs,
        best_key=f"best_{s.metric}",
        facts=s.facts,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=s.max_concurrent)


def _random(space: Space, s: SearcherSpec) -> Searcher:
    return BasicVariantGenerator(
        points_to_evaluate=space.points() or None,
        max_concurrent=s.max_concurrent,
        random_state=s.seed,
    )


SEARCHERS = {"optuna": _optuna, "random": _random}
