"""`python -m search.run space=elf [key=value ...]`: parse, validate, then `run(config)`.

`resolve` builds the one config and the space the search runs (the command line's pinned trial keys
folded in) and checks, before anything starts, what would otherwise fail later: the output folder
and the MLflow URI's scheme. `main` turns every UserInputError into one line on stderr and exit
status 2, before Ray starts.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from record import RECORD_FILE
from search.cluster import keep_local
from search.config import (
    PINS,
    SET_FOR_TRIALS,
    ConfirmSection,
    SearchConfig,
    check_key_kinds,
    flatten_config,
    load_config,
    to_yaml,
)
from search.outputs import MARKER, Outcome, check_output_dir, local_copy
from spaces import Space, list_spaces, load_space
from spaces.distributions import Constant, fmt
from spaces.loss_preflight import table as corner_table
from spaces.pins import pin
from spaces.safe_yaml import read_checked_yaml
from trainables.errors import UserInputError
from trainables.params import PARAMS, closest, task_fields, task_of

USAGE = """usage: python -m search.run [key=value ...]

Runs a Ray Tune search over loss configurations (ASHA + Optuna by default) and writes everything
to output_dir: config.yaml, space.yaml, record.jsonl, tune/ (Ray), report/ (Pareto).

spaces: {spaces}
keys:
  {keys}

trial keys: pin one for every trial (train.lr=0.01), or give it a distribution as a space file
does ('train.lr={{loguniform: [1e-4, 1e-2]}}'); the space's entry gives way, and keys only a pinned
value activated leave with it. With every key of the space pinned the search trains that one
configuration (and the confirmation compares it with plain cross-entropy): the quickest way to
try a loss. train.max_epochs and train.checkpoint_every_s are search keys (above).
  {trial_keys}

data presets (data=NAME) and their options (data.OPTION=VALUE):
  {presets}

examples:
  python -m search.run space=elf
  python -m search.run space=focal search.num_samples=32 train.max_epochs=20
  python -m search.run space=full data=nova dry_run=true
  python -m search.run space=elf train.lr=0.01 train.batch_size=512
  python -m search.run space=focal loss.kind=focal loss.gamma=2.0 loss.alpha=inverse_frequency
  python -m search.run resume=outputs/elf-20261122-101500
"""


def usage() -> str:
    from trainables.data.presets import describe_presets

    defaults = flatten_config(SearchConfig().to_dict())
    defaults.pop(PINS)
    defaults["data"] = defaults.pop("data.preset")
    defaults["scheduler"] = defaults.pop("scheduler.name")
    defaults["model"] = defaults.pop("model.name")
    width = max(map(len, defaults))
    keys = [f"{k:<{width}}  default: {v!r}" for k, v in sorted(defaults.items())]
    keys.append(f"{'data.*':<{width}}  options of the data preset (below)")
    presets = describe_presets().replace("\n", "\n  ")
    return USAGE.format(
        spaces=", ".join(list_spaces()),
        presets=presets,
        keys="\n  ".join(keys),
        trial_keys="\n  ".join(_trial_key_lines()),
    )


def _trial_key_lines() -> list[str]:
    """One line per built-in trial key a command line can pin: name, default, what it does."""
    shown = {k: p for k, p in sorted(PARAMS.items()) if k not in SET_FOR_TRIALS}
    width = max(map(len, shown))
    lines = [
        f"{k:<{width}}  default: {p.default!r}  {p.doc}"
        + (f" One of: {', '.join(map(str, p.choices))}." if p.choices else "")
        for k, p in shown.items()
    ]
    fields = ", ".join(task_fields())
    lines.append(f"{'loss.<task>.*':<{width}}  {fields} of one task (multi-task data)")
    lines.append(
        f"{'(plug-ins)':<{width}}  the keys a model=, trainable= or loss= plug-in declares"
    )
    return lines


def resolve(argv: list[str], env: dict[str, str]) -> tuple[SearchConfig, Space]:
    """CLI arguments → (config, space): the validated config and the space with the config's
    pinned trial keys folded in, loss.kind among them where loss= must pin it (`_loss_kind_pin`;
    a resumed search: its saved config and space.yaml, which holds them already). Also checks
    what would fail once the search started: a key both a plug-in's and a search key, an
    output_dir that cannot be written, an MLflow URI whose scheme MLflow lacks.
    With nothing left to search, search.num_samples becomes 1 (`_one_point`)."""
    cfg = load_config(argv, env.get("MLFLOW_TRACKING_URI"))
    if cfg.resume:
        folder = local_copy(cfg.resume)
        if not (folder / MARKER).exists():
            raise UserInputError(
                f"resume={cfg.resume}: not an output folder of this tool (no {MARKER} in it)"
            )
        saved = read_checked_yaml(folder / "config.yaml", str(folder / "config.yaml"))
        if not isinstance(saved, dict):
            raise UserInputError(f"{folder / 'config.yaml'}: expected a mapping of config keys")
        cfg = _resumed(cfg.resume, saved, argv, env)
        path = str(folder / "space.yaml")
    else:
        _check_preset(cfg.data["preset"])
        path = cfg.space
    from trainables.trial.loop import load_trainable  # here: it imports torch

    load_trainable(cfg.plugins)  # their declared keys are trial keys the space may search
    check_key_kinds()
    space = load_space(path)
    if not cfg.resume:  # a resumed search's space.yaml holds its pins already
        cfg, space = _loss_kind_pin(cfg, pin(space, cfg.params))
    check_output_dir(cfg.output_dir)
    if cfg.mlflow.enabled:
        _check_tracking_uri(cfg.mlflow.tracking_uri)
    return _one_point(cfg, space)


def _loss_kind_pin(cfg: SearchConfig, space: Space) -> tuple[SearchConfig, Space]:
    """loss= and the space (its command-line pins folded in): where the space searches loss.kind
    (or a task's loss.<task>.kind) its choices must name the plug-in's kind; where it leaves
    loss.kind out or fixes it in the file, loss.kind is pinned to the plug-in's kind (a pin of
    `cfg`, saved and resumed like any) and a note says so. Else a UserInputError: no trial would
    train the plug-in."""
    if not cfg.loss:
        return cfg, space
    from trainables.losses.kinds.plugin import load_loss_kind  # here: it imports torch

    name, where = load_loss_kind(cfg.loss).name, f"loss={cfg.loss}"
    kinds = {k: s.dist for k, s in space.params.items() if (task_of(k) or ("", ""))[1] == "kind"}
    if "loss.kind" in space.params:
        kinds["loss.kind"] = space.params["loss.kind"].dist
    if any(name in (d.finite or ()) for d in kinds.values()):
        return cfg, space
    pinned = [k for k in kinds if k in cfg.params]
    if pinned:
        raise UserInputError(
            f"{where}: {pinned[0]}={cfg.params[pinned[0]]} is pinned on the command line, so no "
            f"trial trains {name}; drop that pin (loss= sets loss.kind) or pin {pinned[0]}={name}"
        )
    searched = [k for k, d in kinds.items() if k != "loss.kind" or not isinstance(d, Constant)]
    if searched:
        raise UserInputError(
            f"{where}: space {space.name} has {searched[0]} {kinds[searched[0]]}, which never "
            f"names {name}, so no trial trains it; add {name} to its choices"
        )
    old = kinds.get("loss.kind")
    was = f"the space's loss.kind={fmt(old.value)} gives way" if old else "not in the space"
    note = f"{where}: every trial trains loss.kind={name} ({was})"
    grown = replace(cfg, params={**cfg.params, "loss.kind": name})
    return grown, replace(pin(space, {"loss.kind": name}), notes=(*space.notes, note))


def _check_tracking_uri(configured: str | None) -> None:
    from mirrors.uri import check_scheme, resolve_tracking_uri  # MLflow: only when it is used

    check_scheme(resolve_tracking_uri(configured, None, Path.cwd()))


def _one_point(cfg: SearchConfig, space: Space) -> tuple[SearchConfig, Space]:
    """With every key of `space` fixed, one trial: more would train the same configuration again
    (the confirmation still re-trains it beside plain cross-entropy). Said in the space's notes."""
    n = cfg.search.num_samples
    if space.searched or n == 1:
        return cfg, space
    note = f"search.num_samples is 1 (not {n or 'the default'}): every trial would train the same"
    return replace(cfg, search=replace(cfg.search, num_samples=1)), replace(
        space, notes=(*space.notes, f"{note} configuration")
    )


def _resumed(
    resume: str, saved: dict[str, Any], argv: list[str], env: dict[str, str]
) -> SearchConfig:
    """The saved config with the overrides given beside resume=; only RESUMABLE keys may differ
    from what was saved (the search's meaning stays that of its first run)."""
    uri = env.get("MLFLOW_TRACKING_URI")
    base = _as_overrides(saved) + [f"resume={resume}"]
    given = [a for a in argv if a.partition("=")[0] != "resume"]
    before, after = (_flat(load_config(base + extra, uri)) for extra in ([], given))
    for key, value in after.items():
        if value != before.get(key) and key not in RESUMABLE:
            saved = repr(before[key]) if key in before else "not set"
            raise UserInputError(
                f"resume={resume}: {key} cannot change on resume (saved {saved}, "
                f"given {value!r}); only {', '.join(RESUMABLE)} can, or start a new search"
            )
    return load_config(base + given, uri)


def _flat(cfg: SearchConfig) -> dict[str, Any]:
    """Every key of `cfg` by its command-line name: search keys dotted, pinned trial keys as given
    (the two never share a name)."""
    nested = cfg.to_dict()
    return flatten_config({k: v for k, v in nested.items() if k != PINS}) | nested[PINS]


def _check_preset(name: str) -> None:
    from trainables.data.presets import PRESETS

    if name not in PRESETS:
        raise UserInputError(
            f"data={name}: unknown data preset{closest(name, tuple(PRESETS))}; "
            f"expected one of {list(PRESETS)}"
        )


MLFLOW_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
# the experiment's runs table: MLflow 3 opens an experiment on its GenAI overview otherwise
RUNS_VIEW = "runs?workflowType=machine_learning"
# May differ from the saved config: how the run is shown and logged, and the confirmation stage
# (more seeds on resume re-train only the new ones).
RESUMABLE = (
    "verbose",
    "mlflow.tracking_uri",
    "dry_run",
    "preflight",
    *(f"confirm.{f.name}" for f in fields(ConfirmSection)),
)


def _as_overrides(saved: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, v in saved.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k not in ("data", PINS):
            out += _as_overrides(v, key + ".")
        elif k == "data":
            out += [f"data.{dk}={json.dumps(dv)}" for dk, dv in v.items()]
        elif k == PINS:  # pinned trial keys are given as themselves
            out += [f"{pk}={json.dumps(pv)}" for pk, pv in v.items()]
        elif key not in ("resume", "dry_run"):
            out.append(f"{key}={json.dumps(v)}")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(usage())
        return 0
    cfg = None
    try:
        cfg, space = resolve(argv, dict(os.environ))
        if cfg.dry_run:
            print(to_yaml(cfg))
            print(space.describe())
            return 0
        for note in space.notes:  # said once, as the search starts
            print(f"note: {note}")
        keep_local(cfg.cluster.address)  # before Ray is imported
        from search.driver import prepare, run

        if cfg.preflight == "only":
            print(corner_table(prepare(cfg, space).corners))
            return 0
        outcome = run(cfg, space)
    except UserInputError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if cfg is not None:
            print(f"\ninterrupted: continue with  python -m search.run resume={cfg.output_dir}")
        return 130
    print(summary(outcome))
    return 130 if outcome.interrupted else 0


def summary(o: Outcome) -> str:
    """The text printed when a search ends: counts, best trials and where everything is."""
    c = o.counts
    lines = [
        "",
        f"search {'interrupted' if o.interrupted else 'finished'}: {c.get('completed', 0)} "
        f"completed, {c.get('stopped_early', 0)} stopped early, {c.get('failed', 0)} failed",
    ]
    if o.answer:
        lines.append(f"answer (test split, paired seeds): {o.answer}")
    if o.best:
        lines.append("search's best (validation, one seed each, optimistic):")
    for i, b in enumerate(o.best, 1):
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in b["params"].items())  # none: all pinned
        lines.append(f"  #{i} {b['trial_id']}  {b['metric']} {b['value']:.4f}  {params}".rstrip())
    lines.append(f"ran on:   {o.cluster}")
    lines.append(f"results:  {o.output_dir / RECORD_FILE}")
    if o.report_dir:
        lines.append(f"report:   {o.report_dir / 'pareto.html'}  (and pareto.md, trials.csv)")
    if o.tracking_uri:
        lines.append(f"mlflow:   {o.tracking_uri}")
        served = o.tracking_uri.startswith(("http://", "https://"))
        if not served:
            lines.append(
                f"  open:   mlflow ui --backend-store-uri {o.tracking_uri} --host 127.0.0.1"
            )
        if o.experiment_id:
            ui = o.tracking_uri.rstrip("/") if served else MLFLOW_UI
            lines.append(f"  runs:   {ui}/#/experiments/{o.experiment_id}/{RUNS_VIEW}")
    if o.interrupted:
        lines.append(f"continue: python -m search.run resume={o.output_dir}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    code = main()
    gc.freeze()  # the interpreter's last collection skips the whole heap: ~2 s sooner at exit
    sys.exit(code)
