"""`python -m search.run space=elf [key=value ...]`: parse, validate, then `run(config)`.

`main` turns every UserInputError into one line on stderr and exit status 2, before Ray starts.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from dataclasses import fields
from typing import Any

from record import RECORD_FILE
from search.cluster import keep_local
from search.config import ConfirmSection, SearchConfig, flatten, load_config, to_yaml
from search.outputs import MARKER, Outcome, local_copy
from spaces import Space, list_spaces, load_space
from spaces.corners import table as corner_table
from spaces.safe_yaml import read_yaml
from trainables.errors import UserInputError
from trainables.params import closest

USAGE = """usage: python -m search.run [key=value ...]

Runs a Ray Tune search over loss configurations (ASHA + Optuna by default) and writes everything
to output_dir: config.yaml, space.yaml, record.jsonl, tune/ (Ray), report/ (Pareto).

spaces: {spaces}
keys:
  {keys}

data presets (data=NAME) and their options (data.OPTION=VALUE):
  {presets}

examples:
  python -m search.run space=elf
  python -m search.run space=focal search.num_samples=32 train.max_epochs=20
  python -m search.run space=full data=nova dry_run=true
  python -m search.run resume=outputs/elf-20261122-101500
"""


def usage() -> str:
    from trainables.presets import describe_presets

    defaults = flatten(SearchConfig().to_dict())
    defaults["data"] = defaults.pop("data.preset")
    defaults["scheduler"] = defaults.pop("scheduler.name")
    defaults["model"] = defaults.pop("model.name")
    width = max(map(len, defaults))
    keys = [f"{k:<{width}}  default: {v!r}" for k, v in sorted(defaults.items())]
    keys.append(f"{'data.*':<{width}}  options of the data preset (below)")
    presets = describe_presets().replace("\n", "\n  ")
    return USAGE.format(spaces=", ".join(list_spaces()), presets=presets, keys="\n  ".join(keys))


def resolve(argv: list[str], env: dict[str, str]) -> tuple[SearchConfig, Space]:
    """CLI arguments → (config, space); a resumed search reuses its saved config."""
    cfg = load_config(argv, env.get("MLFLOW_TRACKING_URI"))
    if cfg.resume:
        folder = local_copy(cfg.resume)
        if not (folder / MARKER).exists():
            raise UserInputError(
                f"resume={cfg.resume}: not an output folder of this tool (no {MARKER} in it)"
            )
        saved = read_yaml(folder / "config.yaml", str(folder / "config.yaml"))
        if not isinstance(saved, dict):
            raise UserInputError(f"{folder / 'config.yaml'}: expected a mapping of config keys")
        cfg = _resumed(cfg.resume, saved, argv, env)
        cfg.plugins.load()  # their declared keys are trial keys the space may search
        return cfg, load_space(str(folder / "space.yaml"))
    _check_preset(cfg.data["preset"])
    cfg.plugins.load()
    return cfg, load_space(cfg.space)


def _resumed(
    resume: str, saved: dict[str, Any], argv: list[str], env: dict[str, str]
) -> SearchConfig:
    """The saved config with the overrides given beside resume=; only RESUMABLE keys may differ
    from what was saved (the search's meaning stays that of its first run)."""
    uri = env.get("MLFLOW_TRACKING_URI")
    base = _as_overrides(saved) + [f"resume={resume}"]
    given = [a for a in argv if a.partition("=")[0] != "resume"]
    before, after = (flatten(load_config(base + extra, uri).to_dict()) for extra in ([], given))
    for key, value in after.items():
        if value != before.get(key) and key not in RESUMABLE:
            raise UserInputError(
                f"resume={resume}: {key} cannot change on resume (saved {before.get(key)!r}, "
                f"given {value!r}); only {', '.join(RESUMABLE)} can, or start a new search"
            )
    return load_config(base + given, uri)


def _check_preset(name: str) -> None:
    from trainables.presets import PRESETS

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
        if isinstance(v, dict) and k != "data":
            out += _as_overrides(v, key + ".")
        elif k == "data":
            out += [f"data.{dk}={json.dumps(dv)}" for dk, dv in v.items()]
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
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in b["params"].items())
        lines.append(f"  #{i} {b['trial_id']}  {b['metric']} {b['value']:.4f}  {params}")
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
