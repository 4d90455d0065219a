"""The search configuration: every key with its default, CLI overrides, validation, a frozen result.

Config flows one way: `key=value` overrides (OmegaConf dotlist grammar) → `load_config` → one frozen
`SearchConfig` → `tune.run` and the trials. Nothing else reads the environment behind its back: the
CLI passes `MLFLOW_TRACKING_URI` in explicitly.

A key is a search key (a field below, `data.*`, ...) or a trial key (`trainables.params`, plug-ins'
keys included): `train.lr=0.01` pins a trial key for every trial, `'train.lr={loguniform: [1e-4,
1e-2]}'` gives it a distribution. Pins are checked like a space file's entries and kept in
`SearchConfig.params` (saved with the config, compared on resume like any key); `spaces.pins.pin`
folds them into the space when it loads. The two kinds of key never overlap (`trial_keys`): the
trial keys the search config sets for every trial (`SET_FOR_TRIALS`) are search keys on the
command line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from trainables.errors import UserInputError
from trainables.metrics.table import default_objectives, is_reported, reported
from trainables.objective import Objective
from trainables.params import PARAMS, closest, family_names, pair_of, param
from trainables.plugins import DEFAULT_ENCODER, Plugins, is_reference

SEARCHERS = ("optuna", "random", "nsga2")
TEXT_MODES = ("frozen", "finetune")
SCHEDULERS = ("asha", "fifo", "moasha")
# keys checked by the data preset / the objectives / the confirmation's margins
FREE_FORM = ("data.", "report.reference.", "confirm.delta.")
# `data=X`, `scheduler=X` and `model=X` name a choice while `data.*` etc. set its options.
SHORTHANDS = {"data": "data.preset", "scheduler": "scheduler.name", "model": "model.name"}
# old key -> the keys that replaced it
RENAMED = {  # seeds are added in rounds while a verdict is open, between these two
    "report.reseeds": "confirm.min_seeds and confirm.max_seeds",
    "confirm.seeds": "confirm.min_seeds and confirm.max_seeds",
}

# Trial keys the search config sets for every trial (search.tuner's constants): search keys on the
# command line, so that no key is both a search key and a pinned trial key.
SET_FOR_TRIALS = ("train.max_epochs", "train.checkpoint_every_s")
PINS = "params"  # the field of the pinned trial keys: given as the keys themselves, never params=


@dataclass(frozen=True)
class SearchSection:
    algorithm: str = "optuna"  # TPE (seeded) over the compiled define-by-run space; random; nsga2
    num_samples: int = 0  # trials (points_to_evaluate included); 0: 32, or one pass over a grid
    seed: int = 0  # seeds the searcher, so the same config samples the same trials
    max_concurrent: int = 0  # 0: as many as the resources allow
    metric: str = "val_macro_f1"  # what ASHA and Optuna optimise
    mode: str = "max"
    # what Optuna (and MOASHA) optimise: metric:max|min or a metric whose direction the metric
    # table gives; empty: the report's objectives under scheduler=moasha, else metric alone
    objectives: tuple[str, ...] = ()

    @property
    def objective(self) -> Objective:
        """metric and mode as the one definition of "best" (trainables.objective)."""
        return Objective(self.metric, self.mode)


@dataclass(frozen=True)
class SchedulerSection:
    name: str = "asha"
    grace_period: int = 2  # epochs every trial gets before ASHA may stop it
    reduction_factor: int = 3  # ASHA keeps the top 1/reduction_factor at each rung


@dataclass(frozen=True)
class TrainSection:
    max_epochs: int = 12  # epoch budget of a trial, ASHA's max_t
    checkpoint_every_s: float = 5.0  # least seconds between a trial's checkpoints (0: every epoch)


@dataclass(frozen=True)
class ResourcesSection:
    cpu_per_trial: float = 1.0
    gpu_per_trial: Any = "auto"  # auto: 0.25 when the cluster has GPUs, else 0; or a number
    max_failures: int = 1  # retries of a crashed trial from its last checkpoint


@dataclass(frozen=True)
class MlflowSection:
    enabled: bool = True
    tracking_uri: str | None = None  # else $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db
    experiment: str | None = None  # default: the space name


@dataclass(frozen=True)
class ClusterSection:
    address: str = ""  # "" starts a local Ray; auto, ray://host:10001 or host:port connects
    shared_storage: bool = False  # output_dir is mounted at the same path on every node (NFS)


@dataclass(frozen=True)
class ReportSection:
    objectives: tuple[str, ...] = default_objectives()  # metric:max|min, any reported metric
    reference: dict[str, float] = field(default_factory=dict)  # hypervolume reference per metric


@dataclass(frozen=True)
class ConfirmSection:
    min_seeds: int = 3  # paired seeds every confirmed configuration gets before any verdict
    max_seeds: int = 30  # seed budget per configuration; rounds stop there; 0 turns the stage off
    delta: dict[str, float] = field(default_factory=dict)  # margin per objective (reports.defaults)
    top_k: int = 3  # the best trials by search.metric (validation), besides the Pareto front
    front: bool = True  # also the report's Pareto-front trials
    families: bool = True  # also the best trial of each family (trainables.params.families)
    # family pairs a:b confirmed head to head: the best of a without b against the best of b
    # without a (e.g. elf:focal); a pair whose sides the search did not try is skipped
    versus: tuple[str, ...] = ("elf:lq",)
    alpha: float = 0.05  # family-wise error of the verdicts (Bonferroni: candidates + versus pairs)
    bootstrap: int = 1000  # resamples of the test rows behind each interval's test-split part


@dataclass(frozen=True)
class ModelSection:
    name: str = "mlp"  # mlp, text or package.module:factory
    encoder: str = DEFAULT_ENCODER  # model=text: a sentence-transformers name or folder
    mode: str = "frozen"  # model=text: frozen (embed once, train a head) or finetune
    batch_size: int = 64  # model=text frozen: sentences embedded per batch
    cache_dir: str = ""  # model=text frozen: embedding cache; "": ~/.cache/loss-search/embeddings


@dataclass(frozen=True)
class DistillSection:
    teacher: str = ""  # a finished search's output_dir: its confirmed best config teaches
    folds: int = 5  # out-of-fold soft labels: a row's come from teachers that never fitted it


@dataclass(frozen=True)
class LabelQualitySection:
    folds: int = 5  # out-of-fold probabilities behind the lq.* weights' scores (>= 2)
    cache_dir: str = ""  # their cache; "": ~/.cache/loss-search/label-quality

    def scored(self, data: Any) -> Any:
        """`data` (a Dataset) with the label-quality scores these settings compute."""
        from trainables.data.label_quality import DEFAULT_CACHE, with_label_quality  # torch

        return with_label_quality(data, self.folds, Path(self.cache_dir or DEFAULT_CACHE))


@dataclass(frozen=True)
class SearchConfig:
    space: str = "elf"  # a name in spaces/ or a path to a YAML file
    data: dict[str, Any] = field(default_factory=lambda: {"preset": "synthetic"})
    search: SearchSection = field(default_factory=SearchSection)
    scheduler: SchedulerSection = field(default_factory=SchedulerSection)
    train: TrainSection = field(default_factory=TrainSection)
    resources: ResourcesSection = field(default_factory=ResourcesSection)
    mlflow: MlflowSection = field(default_factory=MlflowSection)
    cluster: ClusterSection = field(default_factory=ClusterSection)
    report: ReportSection = field(default_factory=ReportSection)
    confirm: ConfirmSection = field(default_factory=ConfirmSection)
    model: ModelSection = field(default_factory=ModelSection)
    distill: DistillSection = field(default_factory=DistillSection)
    lq: LabelQualitySection = field(default_factory=LabelQualitySection)
    trainable: str = ""  # package.module:function; empty: the built-in loop
    loss: str = ""  # package.module:name, a loss kind of your own (a value of loss.kind)
    # trial keys pinned on the command line (train.lr=0.01): key -> a value or a space-file entry
    # ({loguniform: [1e-4, 1e-2]}), checked as in a space file; they override the space's entries
    params: dict[str, Any] = field(default_factory=dict)
    output_dir: str = ""  # default: outputs/<space>-<timestamp>
    name: str = ""  # search name (MLflow parent run); default: the output folder's name
    resume: str = ""  # path of an interrupted search's output folder
    dry_run: bool = False
    preflight: str = "on"  # on: the loss preflight before every search; only: it alone, then exit
    verbose: int = 1  # 0: quiet; 1: a live progress line while the search runs

    @property
    def objectives(self) -> tuple[Objective, ...]:
        """What the search optimises (`reports.objectives.searched_objectives`): one objective is
        search.metric's single-metric search; several make the Optuna study multi-objective."""
        from reports.objectives import searched_objectives  # here: reports import plotting

        return searched_objectives(
            self.search.objectives,
            self.report.objectives,
            self.search.objective,
            self.scheduler.name,
        )

    @property
    def plugins(self) -> Plugins:
        """What the trials train: model=, trainable= and loss= (the driver adds a finetuned
        encoder)."""
        return Plugins(self.model.name, self.trainable, loss=self.loss)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), for YAML and MLflow params."""
        return _plain(asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def known_keys(cls: type = SearchConfig, prefix: str = "") -> list[str]:
    """Every dotted search key the CLI accepts (data.* options are checked by the data preset)."""
    keys = []
    for f in fields(cls):
        key = prefix + f.name
        if key == PINS:
            continue
        keys.append(key)
        default = f.default_factory() if callable(f.default_factory) else f.default
        if is_dataclass(default):
            keys += known_keys(type(default), key + ".")
    return keys + list(SHORTHANDS.values())


def trial_keys() -> list[str]:
    """Every registered trial key the command line pins (plug-ins' once loaded): all but those the
    search config sets for every trial. A `loss.<task>.*` key is one too (`params.param`)."""
    return [k for k in PARAMS if k not in SET_FOR_TRIALS]


def check_key_kinds() -> None:
    """Raise UserInputError when a trial key (a plug-in declares it) is also a search key."""
    both = sorted(set(trial_keys()) & set(known_keys()))
    if both:
        raise UserInputError(
            f"trial key {both[0]!r}, declared by a model= or trainable= plug-in, is also a search "
            "key; rename it in the plug-in's params"
        )


def parse_overrides(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Validate `key=value` syntax; expand the `data=`/`scheduler=` shorthands; split the search
    overrides (`key=value`) from the other keys ({key: value text}, trial keys for `load_config`).

    OmegaConf would resolve `${...}` (e.g. `${oc.env:VAR}`) in values, so any `${` is refused.
    """
    keys = known_keys()
    out = []
    others: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserInputError(f"override {arg!r}: expected key=value, e.g. space=elf")
        if "${" in arg:
            raise UserInputError(
                f"override {arg!r}: interpolation ${{...}} is not allowed (it could copy "
                "environment variables into logged params); write the value itself"
            )
        key = SHORTHANDS.get(key, key)
        if key in RENAMED:
            raise UserInputError(
                f"{key} was replaced by {RENAMED[key]} (confirm.max_seeds=0 turns the stage off)"
            )
        if key in keys or key.startswith(FREE_FORM):
            out.append(f"{key}={value}")
        else:
            others[key] = value
    return out, others


def load_config(argv: list[str], mlflow_env_uri: str | None = None) -> SearchConfig:
    """Overrides → a validated, frozen SearchConfig; any problem is a UserInputError."""
    schema = OmegaConf.structured(SearchConfig)
    _writable(schema)
    overrides, others = parse_overrides(argv)
    try:
        merged = OmegaConf.merge(schema, *(_dotlist(o) for o in overrides))
        cfg: SearchConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as e:
        raise UserInputError(_omegaconf_message(e)) from None
    cfg = _fill_defaults(cfg, mlflow_env_uri)
    validate(cfg)
    return replace(cfg, params=_pins(cfg, others))


def _pins(cfg: SearchConfig, given: dict[str, str]) -> dict[str, Any]:
    """The trial keys among `given` ({key: value text}), each value parsed as YAML and checked as a
    space file's entry (kept as checked for a value, as given for a distribution); a key of
    neither kind is unknown. The plug-ins are imported first when a key is not a built-in trial
    key (theirs count) or loss= names a kind (a value of loss.kind)."""
    if not given:
        return {}
    from spaces.distributions import Constant  # here: the spaces package imports torch
    from spaces.pins import check_pin
    from spaces.safe_yaml import parse_yaml

    if cfg.loss or any(param(k) is None for k in given):
        from trainables.trial.loop import load_trainable  # here: it imports torch

        load_trainable(cfg.plugins)
    pins = {}
    for key, text in given.items():
        if param(key) is None:
            names = [*known_keys(), *trial_keys()]
            raise UserInputError(
                f"unknown key {key!r}{closest(key, names)}; expected a search key or a trial key "
                "(python -m search.run --help lists both)"
            )
        entry = _plain(parse_yaml(text, f"override {key}={text}", lines=False))
        dist = check_pin(key, entry)
        pins[key] = _plain(dist.value) if isinstance(dist, Constant) else entry
    return pins


def _dotlist(override: str) -> Any:
    try:
        return OmegaConf.from_dotlist([override])
    except yaml.YAMLError as e:
        reason = getattr(e, "problem", None) or "not a valid value"
        raise UserInputError(
            f"override {override!r}: {reason}; expected a YAML value, e.g. search.num_samples=8 "
            "or report.objectives=[val_ece:min]"
        ) from None


def _writable(node: Any) -> None:
    """Frozen dataclasses make every schema node read-only; overrides must still merge into it."""
    OmegaConf.set_readonly(node, False)
    for key in node:
        child = node._get_node(key)
        if OmegaConf.is_dict(child):
            _writable(child)


def _omegaconf_message(e: OmegaConfBaseException) -> str:
    key = getattr(e, "full_key", None) or ""
    msg = str(e).splitlines()[0]
    return f"{key}: {msg}" if key else msg


def _fill_defaults(cfg: SearchConfig, mlflow_env_uri: str | None) -> SearchConfig:
    space_stem = Path(cfg.space).stem
    output_dir = cfg.resume or cfg.output_dir
    if not output_dir:
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        output_dir = f"outputs/{space_stem}-{stamp}"
    mlflow = replace(
        cfg.mlflow,
        tracking_uri=cfg.mlflow.tracking_uri or mlflow_env_uri,
        experiment=cfg.mlflow.experiment or space_stem,
    )
    data = {"preset": "synthetic"} | dict(cfg.data)
    return replace(
        cfg,
        output_dir=output_dir,
        name=cfg.name or Path(output_dir).name,
        mlflow=mlflow,
        data=data,
        report=replace(cfg.report, objectives=tuple(cfg.report.objectives)),
        confirm=replace(cfg.confirm, versus=tuple(cfg.confirm.versus)),
        search=replace(cfg.search, objectives=tuple(cfg.search.objectives)),
    )


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserInputError(f"{key}: expected one of {list(allowed)}, got {value!r}")


def _positive(key: str, value: float, minimum: float = 1) -> None:
    if value < minimum:
        raise UserInputError(f"{key}: expected a value >= {minimum}, got {value!r}")


def validate(cfg: SearchConfig) -> None:
    """Cross-field checks OmegaConf's typing cannot express."""
    _choice("search.algorithm", cfg.search.algorithm, SEARCHERS)
    _choice("search.mode", cfg.search.mode, ("max", "min"))
    _choice("model.mode", cfg.model.mode, TEXT_MODES)
    _choice("preflight", cfg.preflight, ("on", "only"))
    _positive("distill.folds", cfg.distill.folds, 0)
    _positive("lq.folds", cfg.lq.folds, 2)
    _positive("model.batch_size", cfg.model.batch_size)
    if cfg.loss and not is_reference(cfg.loss):
        raise UserInputError(
            f"loss={cfg.loss}: expected package.module:name, a loss kind of your own (a built-in "
            f"kind is chosen with loss.kind={cfg.loss})"
        )
    if not cfg.trainable and not is_reported(cfg.search.metric):  # a trainable's: the preflight
        raise UserInputError(
            f"search.metric: {cfg.search.metric!r} is not a metric trials report"
            f"{closest(cfg.search.metric, reported())}; expected e.g. val_macro_f1 or val_ece"
        )
    _choice("scheduler", cfg.scheduler.name, SCHEDULERS)
    _positive("search.num_samples", cfg.search.num_samples, 0)
    _positive("search.max_concurrent", cfg.search.max_concurrent, 0)
    _positive("train.max_epochs", cfg.train.max_epochs)
    _positive("train.checkpoint_every_s", cfg.train.checkpoint_every_s, 0)
    _positive("scheduler.grace_period", cfg.scheduler.grace_period)
    _positive("scheduler.reduction_factor", cfg.scheduler.reduction_factor, 2)
    _positive("resources.cpu_per_trial", cfg.resources.cpu_per_trial, 0.01)
    _positive("resources.max_failures", cfg.resources.max_failures, 0)
    _check_confirm(cfg.confirm, cfg.report, cfg.search)
    _check_versus(cfg)
    _positive("confirm.top_k", cfg.confirm.top_k, 0)
    _positive("confirm.bootstrap", cfg.confirm.bootstrap, 100)
    if not 0 < cfg.confirm.alpha < 1:
        raise UserInputError(
            f"confirm.alpha: expected a value in (0, 1), got {cfg.confirm.alpha!r}"
        )
    _check_report(cfg.report, any_metric=bool(cfg.trainable))
    _check_objectives(cfg)
    gpu = cfg.resources.gpu_per_trial
    if gpu != "auto" and (isinstance(gpu, bool) or not isinstance(gpu, int | float) or gpu < 0):
        raise UserInputError(
            f"resources.gpu_per_trial: expected 'auto' or a number >= 0, got {gpu!r}"
        )
    if isinstance(gpu, int | float) and gpu > 1 and gpu != int(gpu):
        raise UserInputError(f"resources.gpu_per_trial: a value above 1 must be whole, got {gpu!r}")
    if cfg.scheduler.grace_period > cfg.train.max_epochs:
        raise UserInputError(
            f"scheduler.grace_period ({cfg.scheduler.grace_period}) must be <= "
            f"train.max_epochs ({cfg.train.max_epochs})"
        )


def _check_confirm(confirm: ConfirmSection, report: ReportSection, search: SearchSection) -> None:
    """The seed budget holds the minimum; each margin is a number >= 0 for a confirmed objective
    (the report's objectives and search.metric, by their val_ or test_ name)."""
    _positive("confirm.min_seeds", confirm.min_seeds, 1)
    _positive("confirm.max_seeds", confirm.max_seeds, 0)
    if 0 < confirm.max_seeds < confirm.min_seeds:
        raise UserInputError(
            f"confirm.max_seeds: expected 0 (no confirmation) or a budget >= confirm.min_seeds "
            f"({confirm.min_seeds}), got {confirm.max_seeds}"
        )
    names = [str(o).rpartition(":")[0].strip() for o in report.objectives] + [search.metric]
    confirmed = {n.removeprefix("val_") for n in names}
    for key, value in confirm.delta.items():
        if key.removeprefix("val_").removeprefix("test_") not in confirmed:
            raise UserInputError(
                f"confirm.delta.{key}: not a confirmed objective; expected one of "
                f"{sorted(dict.fromkeys(names))}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise UserInputError(f"confirm.delta.{key}: expected a number >= 0, got {value!r}")


def _check_versus(cfg: SearchConfig) -> None:
    """Each confirm.versus pair names two families; a loss= plug-in's kind is one (imported)."""
    if cfg.confirm.versus and cfg.loss:
        from trainables.trial.loop import load_trainable  # here: it imports torch

        load_trainable(cfg.plugins)
    for pair in cfg.confirm.versus:
        versus_pair(pair)


def versus_pair(text: str) -> tuple[str, str]:
    """confirm.versus's `a:b` as (a, b), two different family names (trainables.params)."""
    import trainables.losses.kinds  # noqa: F401  here: it imports torch; registers the kinds

    known = family_names()
    a, b = pair_of(text)
    if a == b or a not in known or b not in known:
        raise UserInputError(
            f"confirm.versus: {text!r}: expected a:b, two different families of {list(known)}"
        )
    return a, b


def _check_objectives(cfg: SearchConfig) -> None:
    """search.objectives parse (metric:max|min or a metric the table gives a direction), repeat
    no metric, and name metrics every trial reports (a trainable's: the preflight checks them)."""
    try:
        objectives = cfg.objectives
    except UserInputError as e:
        raise UserInputError(f"search.objectives: {e}") from None
    for o in objectives:
        if not cfg.trainable and not is_reported(o.metric):
            raise UserInputError(
                f"search.objectives: {o.metric!r} is not a metric trials report"
                f"{closest(o.metric, reported())}; expected e.g. val_ece:min or val_macro_f1"
            )


def _check_report(report: ReportSection, any_metric: bool = False) -> None:
    """Objectives parse and name metrics every trial reports (`any_metric`, a trainable's: the
    preflight checks them); reference keys are objectives."""
    from reports.objectives import parse_objectives  # here: the reports package imports plotting

    try:
        objectives = parse_objectives(report.objectives)
    except UserInputError as e:
        raise UserInputError(f"report.objectives: {e}") from None
    for o in objectives:
        if not any_metric and not is_reported(o.metric):
            raise UserInputError(
                f"report.objectives: {o.metric!r} is not a metric trials report"
                f"{closest(o.metric, reported())}; expected e.g. val_ece:min or val_f1_c0:max"
            )
    names = [o.metric for o in objectives]
    unknown = sorted(set(report.reference) - set(names))
    if unknown:
        raise UserInputError(
            f"report.reference: {unknown} are not objectives; expected keys among {names}"
        )


def to_yaml(cfg: SearchConfig) -> str:
    """The resolved config as YAML (written to <output_dir>/config.yaml and printed by dry_run)."""
    return OmegaConf.to_yaml(OmegaConf.create(cfg.to_dict()))


def flatten_config(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The config's keys, dotted: {'a': {'b': 1}} → {'a.b': 1}; an empty section stays one key whose
    value is {} (free-form sections such as report.reference still show in --help). MLflow's params are
    flattened by `mirrors.names.flatten_params`, which drops empty sections."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out |= flatten_config(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out
