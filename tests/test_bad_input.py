"""Bad input through the real CLI entry: one line on stderr naming the culprit, exit status 2,
no Ray start and no output folder (issue 8).

Every case drives `search.run.main([...])` in-process with its own files in tmp_path; a few also run
`python -m search.run` in a fresh process. Ray's `connect` is replaced by a tripwire, so a case that
wrongly passes validation fails loudly instead of running a search.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

import search.driver
from search.run import main
from spaces import load_space
from spaces.distributions import LogUniform

ROOT = Path(__file__).resolve().parents[1]
SECRET_VAR, SECRET = "LOSS_SEARCH_SECRET", "s3cr3t-token-value"

Make = Callable[[Path], list[str]]  # writes the case's files into a folder, returns CLI arguments


# ---------------------------------------------------------------- case builders


def _space(text: str | bytes, name: str = "space.yaml") -> Make:
    def make(tmp: Path) -> list[str]:
        path = tmp / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return [f"space={path}"]

    return make


def _frame(n: int = 60) -> pd.DataFrame:
    """Three balanced classes, two features, a proportion, a count and a text column."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "share": rng.random(n),
            "reviews": rng.poisson(5, n),
            "msg": [f"fix the {['bug', 'doc', 'typo'][i % 3]} in line {i}" for i in range(n)],
            "label": [["x", "y", "z"][i % 3] for i in range(n)],
        }
    )


def _table(
    content: Callable[[pd.DataFrame], pd.DataFrame] | str | bytes | None = None,
    name: str = "t.csv",
    *extra: str,
) -> Make:
    """`data=table` over a file: `_frame()` changed by `content`, or raw text/bytes."""

    def make(tmp: Path) -> list[str]:
        path = tmp / name
        if isinstance(content, str | bytes):
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        else:
            frame = (content or (lambda f: f))(_frame())
            if name.endswith(".parquet"):
                frame.to_parquet(path)
            else:
                frame.to_csv(path, index=False)
        return ["data=table", f"data.path={path}", "data.label=label", *extra]

    return make


def _args(*argv: str) -> Make:
    return lambda tmp: list(argv)


def _loss(module: str, code: str, attr: str = "my_loss", *extra: str) -> Make:
    """`loss=<module>:<attr>` over a module written among the case's files (on sys.path: the
    `isolated` fixture puts them there; each case names its own module), with a space that
    searches loss.kind in [ce, my_loss] (so no note is said) unless `extra` names one."""

    def make(tmp: Path) -> list[str]:
        (tmp / f"{module}.py").write_text(code)
        sys.path_importer_cache.pop(str(tmp), None)  # looked up before the folder existed
        importlib.invalidate_caches()
        space = tmp / "space.yaml"
        space.write_text("params:\n  loss.kind: {choice: [ce, my_loss]}\n")
        given = extra if any(a.startswith("space=") for a in extra) else (f"space={space}",)
        return [f"loss={module}:{attr}", *given]

    return make


PER_SAMPLE = "from trainables.params import Param\n\ndef my_loss(logits, target, params):\n"
CE_LINE = "    return -logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)\n"


def _own(column: str, norm: str | None = None, signal: str = "aco") -> str:
    """A `data.ownership` override in OmegaConf dotlist syntax."""
    norm_part = f", norm: {norm}" if norm else ""
    return f"data.ownership={{{column}: {{signal: {signal}, granularity: package{norm_part}}}}}"


def _set(column: str, rows: list[int], value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(f: pd.DataFrame) -> pd.DataFrame:
        f[column] = f[column].astype(object) if isinstance(value, str) else f[column]
        f.loc[rows, column] = value
        return f

    return change


BOMB = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [
        f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    + ["params: {train.lr: 0.01}", ""]
)
LATIN1_CSV = "a,label\n1,caf\xe9\n2,th\xe9\n".encode("latin-1")

# name: (files and arguments, fragments the one error line must contain)
CASES: dict[str, tuple[Make, tuple[str, ...]]] = {
    # ---- space files
    "space_malformed_yaml": (
        _space("params:\n  train.lr: {loguniform: [1.0e-3, 1.0e-2]\n", "malformed.yaml"),
        ("malformed.yaml:3", "malformed YAML", "expected ',' or '}'"),
    ),
    "space_tab_indentation": (
        _space("params:\n\ttrain.lr: 0.01\n", "tabs.yaml"),
        ("tabs.yaml:2", "tab in indentation"),
    ),
    "space_duplicate_key": (
        _space("params:\n  train.lr: 0.01\n  train.lr: 0.02\n", "dup.yaml"),
        ("dup.yaml:3", "duplicate key 'train.lr' (first at line 2)"),
    ),
    "space_unknown_distribution": (
        _space("params:\n  train.lr: {logunifrm: [0.001, 0.01]}\n"),
        ("space.yaml:2", "params.train.lr", "unknown distribution 'logunifrm'", "loguniform"),
    ),
    "space_low_above_high": (
        _space("params:\n  train.lr: {uniform: [0.01, 0.001]}\n"),
        ("params.train.lr", "uniform needs low < high, got [0.01, 0.001]"),
    ),
    "space_low_equals_high": (
        _space("params:\n  train.lr: {loguniform: [0.01, 0.01]}\n"),
        ("params.train.lr", "loguniform needs low < high, got [0.01, 0.01]"),
    ),
    "space_loguniform_low_zero": (
        _space("params:\n  train.weight_decay: {loguniform: [0, 0.01]}\n"),
        ("params.train.weight_decay", "loguniform needs low > 0, got low=0"),
    ),
    "space_empty_choice": (
        _space("params:\n  elf.strategy: {choice: []}\n"),
        ("params.elf.strategy", "choice needs a non-empty list of values, got []"),
    ),
    "space_bare_list": (
        _space("params:\n  elf.strategy: [aco, rso]\n"),
        ("params.elf.strategy", "a bare list is ambiguous"),
    ),
    "space_unknown_trial_key": (
        _space("params:\n  train.lrr: 0.01\n"),
        ("space.yaml:2", "params.train.lrr", "unknown trial key", "did you mean: train.lr"),
    ),
    "space_unknown_top_level_key": (
        _space("param:\n  train.lr: 0.01\n"),
        ("space.yaml:1", "param:", "unknown top-level key", "did you mean: params"),
    ),
    "space_condition_on_undefined_parameter": (
        _space(
            "params:\n  elf.granularity:\n    choice: [repository, package]\n"
            "    when: {elf.strategy: aco}\n"
        ),
        ("params.elf.granularity.when.elf.strategy", "undefined parameter 'elf.strategy'"),
    ),
    "space_exponent_read_as_string": (  # YAML 1.1 reads 1e2 (no dot) as a string
        _space("params:\n  train.batch_size: {choice: [1e2, 256]}\n"),
        ("params.train.batch_size", "'1e2'", "YAML read it as a string"),
    ),
    "space_value_out_of_range": (
        _space("params:\n  train.lr: {uniform: [0.001, 2.0]}\n"),
        ("params.train.lr", "expected a value in [1e-07, 1.0], got 2.0"),
    ),
    "space_point_outside_distribution": (
        _space(
            "params:\n  train.lr: {loguniform: [0.001, 0.01]}\n"
            "points_to_evaluate:\n  - {train.lr: 0.5}\n"
        ),
        ("points_to_evaluate.0.train.lr", "0.5 lies outside the distribution"),
    ),
    "space_alias_bomb": (
        _space(BOMB, "bomb.yaml"),
        ("bomb.yaml:1", "anchors and aliases (&name, *name) are not allowed"),
    ),
    "space_oversized_file": (
        _space("# " + "x" * (1 << 20) + "\nparams: {train.lr: 0.01}\n", "big.yaml"),
        ("big.yaml", "a space file must be at most 1048576 bytes (1 MiB)"),
    ),
    "space_python_tag": (
        _space("params:\n  train.lr: !!python/object/apply:os.getcwd []\n"),
        ("space.yaml:2", "python/object/apply:os.getcwd' is not allowed"),
    ),
    "space_env_interpolation_stays_literal": (
        _space(f"params:\n  train.lr: ${{oc.env:{SECRET_VAR}}}\n"),
        ("params.train.lr", f"expected a number, got '${{oc.env:{SECRET_VAR}}}'"),
    ),
    "space_empty_file": (
        _space("", "empty.yaml"),
        ("empty.yaml", "the file is empty; expected a mapping with keys"),
    ),
    "space_not_utf8": (
        _space("description: caf\xe9\nparams: {train.lr: 0.01}\n".encode("latin-1"), "l1.yaml"),
        ("l1.yaml", "not UTF-8 text"),
    ),
    "space_file_missing": (
        lambda tmp: [f"space={tmp / 'nowhere.yaml'}"],
        ("nowhere.yaml", "space file not found"),
    ),
    "space_unknown_name": (
        _args("space=elff"),
        ("unknown space 'elff'", "did you mean: elf"),
    ),
    # ---- overrides
    "override_without_equals": (
        _args("space"),
        ("override 'space'", "expected key=value"),
    ),
    "override_bad_value_syntax": (
        _args("search.num_samples=[1,"),
        ("override 'search.num_samples=[1,'", "expected a YAML value"),
    ),
    "override_unknown_objective_metric": (
        _args("report.objectives=[val_f1:max]"),
        ("report.objectives: 'val_f1' is not a metric trials report", "val_macro_f1"),
    ),
    "override_bad_objective_direction": (
        _args("report.objectives=[val_ece:low]"),
        ("report.objectives", "'val_ece:low'", "expected metric:max or metric:min"),
    ),
    "search_objective_not_reported": (
        _args("search.objectives=[val_f1:max,val_ece]"),
        ("search.objectives: 'val_f1' is not a metric trials report", "val_macro_f1"),
    ),
    "search_objective_bad_direction": (
        _args("search.objectives=[val_macro_f1:up,val_ece]"),
        ("search.objectives", "'val_macro_f1:up'", "expected metric:max or metric:min"),
    ),
    "search_objective_twice": (
        _args("search.objectives=[val_ece,val_ece:min]"),
        ("search.objectives", "repeated: ['val_ece']"),
    ),
    "search_objective_without_direction": (
        _args("search.objectives=[val_entropy,val_ece]"),
        ("search.objectives", "'val_entropy'", "write val_entropy:max or val_entropy:min"),
    ),
    "search_single_objective_not_the_metric": (
        _args("search.objectives=[val_ece]"),
        ("search.objectives", "set search.metric=val_ece search.mode=min"),
    ),
    "override_reference_not_an_objective": (
        _args("report.reference.val_loss=0.3"),
        ("report.reference: ['val_loss'] are not objectives",),
    ),
    "override_unknown_key": (
        _args("search.num_sample=4"),
        ("unknown key 'search.num_sample'", "did you mean: search.num_samples"),
    ),
    "override_wrong_type_int": (
        _args("search.num_samples=four"),
        ("search.num_samples", "'four'"),
    ),
    "override_wrong_type_bool": (
        _args("dry_run=maybe"),
        ("dry_run", "'maybe'", "not a valid bool"),
    ),
    "override_unknown_choice": (
        _args("scheduler=hyperband"),
        ("scheduler: expected one of ['asha', 'fifo', 'moasha'], got 'hyperband'",),
    ),
    "override_grace_above_budget": (
        _args("scheduler.grace_period=20"),
        ("scheduler.grace_period (20) must be <= train.max_epochs (12)",),
    ),
    "override_env_interpolation": (
        _args(f"mlflow.experiment=${{oc.env:{SECRET_VAR}}}"),
        (f"mlflow.experiment=${{oc.env:{SECRET_VAR}}}", "interpolation ${...} is not allowed"),
    ),
    "override_env_interpolation_in_data": (
        _args("data=table", f"data.path=${{oc.env:{SECRET_VAR}}}", "data.label=label"),
        ("data.path=", "interpolation ${...} is not allowed"),
    ),
    "override_unknown_data_option": (
        _args("data.noise_mx=0.1"),
        ("data.noise_mx: unknown option", "did you mean: noise_max"),
    ),
    "override_wrong_data_type": (
        _args("data.n_train=many"),
        ("data.n_train: expected an integer, got 'many'",),
    ),
    "override_unknown_preset": (
        _args("data=parquet"),
        ("data=parquet: unknown data preset",),
    ),
    "override_table_without_path": (
        _args("data=table", "data.label=label"),
        ("the preset needs data.path",),
    ),
    # ---- trial keys pinned on the command line: checked like a space file's entries
    "pin_value_out_of_range": (
        _args("train.lr=2"),
        ("command line: train.lr: expected a value in [1e-07, 1.0], got 2.0",),
    ),
    "pin_unknown_trial_key": (
        _args("train.lrr=0.01"),
        ("unknown key 'train.lrr'", "did you mean: train.lr", "a search key or a trial key"),
    ),
    "pin_low_above_high": (
        _args("train.lr={loguniform: [1e-2, 1e-4]}"),
        ("command line: train.lr: loguniform needs low < high, got [0.01, 0.0001]",),
    ),
    "pin_malformed_yaml": (
        _args("train.lr={loguniform: [1e-4, 1e-2]"),
        ("override train.lr={loguniform: [1e-4, 1e-2]: malformed YAML",),
    ),
    "pin_unknown_choice": (
        _args("elf.strategy=acoo"),
        ("command line: elf.strategy: expected one of", "got 'acoo'"),
    ),
    "pin_bare_list": (
        _args("elf.strategy=[none, aco]"),
        ("command line: elf.strategy: a bare list is ambiguous",),
    ),
    "pin_deactivated_by_another_pin": (
        _args("space=elf", "elf.strategy=none", "elf.granularity=package"),
        ("command line: elf.granularity: inactive under the other pins", "elf.strategy"),
    ),
    "pin_with_a_condition": (
        _args("train.lr={choice: [0.01], when: {elf.strategy: aco}}"),
        ("command line: train.lr.when: a pinned key keeps the condition the space gives it",),
    ),
    "pin_continuous_parent": (
        lambda tmp: [
            *_space(
                "params:\n  cw.method: effective\n  cw.beta: {choice: [0.9, 0.99]}\n"
                "  cw.cap: {choice: [2.0, 4.0], when: {cw.beta: 0.9}}\n"
            )(tmp),
            "cw.beta={uniform: [0.5, 0.9]}",
        ],
        ("command line: cw.beta: cw.cap is conditioned on cw.beta", "choice, grid or constant"),
    ),
    "pin_one_task_of_a_task_template": (
        _args("space=multitask", "loss.t1.kind=focal"),
        ("command line: loss.t1.kind: the space searches loss.<task>.kind",),
    ),
    # ---- MLflow
    "mlflow_unsupported_scheme": (
        _args("mlflow.tracking_uri=ftp://x/y"),
        ("MLflow tracking URI ftp://x/y", "no tracking store for scheme 'ftp'", "sqlite, mssql"),
    ),
    # ---- data files
    "data_missing_file": (
        lambda tmp: ["data=table", f"data.path={tmp / 'nope.csv'}", "data.label=label"],
        ("table file not found", "nope.csv"),
    ),
    "data_path_is_a_directory": (
        lambda tmp: ["data=table", f"data.path={tmp}", "data.label=label"],
        ("is a directory; expected a CSV, TSV or Parquet file",),
    ),
    "data_unsupported_extension": (
        _table("a,label\n1,x\n", "t.xlsx"),
        ("t.xlsx: unsupported file type",),
    ),
    "data_not_utf8": (
        _table(LATIN1_CSV, "latin.csv"),
        ("latin.csv", "column 'label' is not valid UTF-8 text"),
    ),
    "data_missing_label_column": (
        _table(None, "t.csv", "data.label=lable"),
        ("t.csv: no label column 'lable'", "did you mean: label"),
    ),
    "data_missing_feature_column": (
        _table(None, "t.csv", "data.features=[a, zz]"),
        ("t.csv: no feature column 'zz'", "expected one of the file's columns: "),
    ),
    "data_missing_ownership_column": (
        _table(None, "t.csv", _own("owner", "none")),
        ("t.csv: no ownership column 'owner'",),
    ),
    "data_missing_text_column": (
        _table(None, "t.csv", "data.text=mesg"),
        ("t.csv: no text column 'mesg'", "did you mean: msg"),
    ),
    "data_nan_labels": (
        _table(_set("label", [3, 7], np.nan), "nan.csv"),
        ("nan.csv", "label column 'label' has 2 empty/NaN values (first rows [3, 7])"),
    ),
    "data_empty_string_labels": (
        _table(_set("label", [4], ""), "blank.parquet"),
        ("blank.parquet", "label column 'label' has 1 empty/NaN values (first rows [4])"),
    ),
    "data_single_class": (
        _table(_set("label", list(range(60)), "x"), "one.csv"),
        ("one.csv", "label column 'label' has a single class ['x']"),
    ),
    "data_class_only_in_validation": (
        _table(_set("label", [5], "rare"), "rare.csv"),
        ("rare.csv", "classes {'rare': 1} have fewer than 3 rows"),
    ),
    "data_proportion_above_one": (
        _table(_set("share", [2], 1.5), "p.csv", _own("share", "none")),
        ("p.csv", "ownership column 'share' has value 1.5 at row 2 outside [0, 1]", "norm none"),
    ),
    "data_proportion_below_zero": (
        _table(_set("share", [9], -0.2), "p.csv", _own("share", "none")),
        ("p.csv", "ownership column 'share' has value -0.2 at row 9 outside [0, 1]"),
    ),
    "data_counts_without_normalisation": (
        _table(None, "c.csv", _own("reviews", signal="rso")),
        ("c.csv", "ownership column 'reviews'", "look like counts", "log_max or rank"),
    ),
    "data_negative_counts_for_log_max": (
        _table(_set("reviews", [0], -1), "neg.csv", _own("reviews", "log_max", "rso")),
        ("neg.csv", "ownership column 'reviews' has negative values (first -1 at row 0)"),
    ),
    "data_ownership_bad_signal": (
        _table(None, "t.csv", "data.ownership={share: {signal: acoo, granularity: package}}"),
        ("ownership.share.signal: expected one of ['aco', 'rso'], got 'acoo'",),
    ),
    "data_ownership_not_a_mapping": (
        _table(None, "t.csv", "data.ownership={share: 3}"),
        ("data.ownership.share: expected a mapping, got 3",),
    ),
    "data_ownership_column_all_nan": (
        _table(lambda f: f.assign(o=np.nan), "on.csv", _own("o", "none")),
        ("on.csv", "ownership column 'o' has no values"),
    ),
    "data_constant_features": (
        _table(lambda f: f.assign(c=3.0), "const.csv", "data.features=[c]"),
        ("const.csv", "every feature column (c) is constant or all-NaN", "data.text is unset"),
    ),
    "data_all_nan_feature": (
        _table(lambda f: f.assign(e=np.nan), "nanf.csv", "data.features=[a, e]"),
        ("nanf.csv", "feature column 'e' has no values"),
    ),
    "data_non_numeric_feature": (
        _table(None, "t.csv", "data.features=[a, msg]"),
        ("t.csv: column 'msg' must be numeric",),
    ),
    "data_features_wrong_type": (
        _table(None, "t.csv", "data.features=3"),
        ("data.features: expected a list of strings or a string, got 3",),
    ),
    "data_empty_text": (
        _table(lambda f: f.assign(msg=""), "notext.csv", "data.text=msg"),
        ("notext.csv", "text column 'msg' has no words in any training row"),
    ),
    "data_duplicated_column_names": (
        _table("a,a,label\n1,2,x\n", "dupcol.csv"),
        ("dupcol.csv: duplicated column names ['a']",),
    ),
    "data_zero_rows_csv": (
        _table("a,b,label\n", "header.csv"),
        ("header.csv: the table has no data rows",),
    ),
    "data_zero_rows_parquet": (
        _table(lambda f: f.iloc[:0], "zero.parquet"),
        ("zero.parquet: the table has no data rows",),
    ),
    "data_empty_file": (
        _table("", "empty.csv"),
        ("empty.csv: the file is empty; expected a header row",),
    ),
    "data_ragged_csv": (
        _table("a,b,label\n1,2,x\n1,2\n", "ragged.csv"),
        ("ragged.csv: cannot be read as a table", "Expected 3 columns, got 2"),
    ),
    "data_corrupt_parquet": (
        _table(b"PAR1 not really parquet", "bad.parquet"),
        ("bad.parquet: not a readable Parquet file",),
    ),
    "data_split_fraction_out_of_range": (
        _table(None, "t.csv", "data.val_frac=2"),
        ("data.val_frac must be in (0, 1), got 2.0",),
    ),
    # ---- label-quality weights: every class needs lq.folds training rows for its folds
    "label_quality_fewer_rows_than_folds": (
        lambda tmp: [
            *_space("params:\n  lq.method: {choice: [none, self_confidence]}\n", "lq.yaml")(tmp),
            *_table(None, "t.csv", "lq.folds=30")(tmp),
        ],
        ("lq.folds=30: class 'x' has", "training row(s)", "at least lq.folds rows of every class"),
    ),
    "label_quality_one_fold": (
        _args("lq.folds=1"),
        ("lq.folds: expected a value >= 2, got 1",),
    ),
    # ---- loss= plug-ins (docs/guide/plugins.md#your-loss)
    "loss_unimportable": (
        _args("loss=nosuch_loss_pkg.mod:my_loss"),
        ("loss=nosuch_loss_pkg.mod:my_loss", "cannot import nosuch_loss_pkg.mod"),
    ),
    "loss_not_found": (
        _loss("loss_missing", PER_SAMPLE + CE_LINE, "other"),
        ("loss=loss_missing:other", "other in loss_missing is not found"),
    ),
    "loss_not_callable": (
        _loss("loss_number", "my_loss = 3\n"),
        (
            "loss=loss_number:my_loss",
            "an object of type int, neither a trainables.losses.kinds.LossKind nor",
        ),
    ),
    "loss_not_a_reference": (
        _args("loss=focal"),
        ("loss=focal: expected package.module:name", "loss.kind=focal"),
    ),
    "loss_wrong_shape": (
        _loss("loss_shape", PER_SAMPLE + "    return -logits.log_softmax(-1)\n"),
        (
            "loss=loss_shape:my_loss: returned a torch.float32 tensor of shape (64, 5)",
            "expected the per-sample losses, a float tensor of shape (64,)",
        ),
    ),
    "loss_not_finite": (
        _loss("loss_nan", PER_SAMPLE + "    return logits.sum(-1) * float('nan')\n"),
        ("loss=loss_nan:my_loss: the loss (nan) or its gradient is not finite", "preflight"),
    ),
    "loss_raises": (
        _loss("loss_raises", PER_SAMPLE + "    raise KeyError('loss.q')\n"),
        ("loss=loss_raises:my_loss: preflight on one batch: KeyError: 'loss.q'",),
    ),
    "loss_key_not_a_loss_key": (
        _loss(
            "loss_lr",
            PER_SAMPLE + CE_LINE + "my_loss.params = [Param('train.lr', 1.0, 'float', 'Mine.')]\n",
        ),
        ("loss=loss_lr:my_loss", "its key 'train.lr' must be loss.<field>"),
    ),
    "loss_key_declared_otherwise": (
        _loss(
            "loss_gamma",
            PER_SAMPLE
            + CE_LINE
            + "my_loss.params = [Param('loss.gamma', 5.0, 'float', 'Mine.', low=0, high=9)]\n",
        ),
        ("loss=loss_gamma:my_loss", "loss.gamma is declared otherwise by a kind"),
    ),
    "loss_name_of_a_built_in_kind": (
        _loss("loss_focal", PER_SAMPLE + CE_LINE + "my_loss.name = 'focal'\n"),
        ("loss=loss_focal:my_loss: its name 'focal' is a built-in loss kind's",),
    ),
    "loss_name_not_an_identifier": (
        _loss("loss_dash", PER_SAMPLE + CE_LINE + "my_loss.name = 'my-loss'\n"),
        ("loss=loss_dash:my_loss: its name 'my-loss' (loss.kind's value) is not an identifier",),
    ),
    "loss_kind_never_trained": (
        _loss("loss_unused", PER_SAMPLE + CE_LINE, "my_loss", "space=focal"),
        ("space focal has loss.kind choice [ce, focal], which never names my_loss",),
    ),
}


# ---------------------------------------------------------------- the table


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A clean working directory, a secret in the environment and a tripwire instead of Ray."""

    def tripwire(*args, **kwargs):
        raise AssertionError("validation passed and the CLI went on to start Ray")

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(tmp_path / "files"))  # loss= plug-ins' modules (`_loss`)
    monkeypatch.setenv(SECRET_VAR, SECRET)
    monkeypatch.setattr(search.driver, "connect", tripwire)
    return tmp_path


def test_the_table_has_at_least_30_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_exit_2_without_ray_or_output(name, isolated, capsys):
    make, fragments = CASES[name]
    files = isolated / "files"
    files.mkdir()
    out = isolated / "out"
    code = main([*make(files), f"output_dir={out}"])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    assert SECRET not in captured.err + captured.out
    assert captured.out == ""
    assert not ray.is_initialized()
    assert not out.exists()
    assert list((isolated / "cwd").iterdir()) == []


def test_a_pin_the_data_cannot_take_is_one_line_after_the_pin_note(isolated, capsys):
    """A two-class α pinned on five classes fails when the space meets the data, like a space
    file's α; stdout has said what the pins did (the search had started), stderr has one line."""
    out = isolated / "out"
    args = ["space=focal", "loss.kind=focal", "loss.alpha=[0.5, 0.5]", f"output_dir={out}"]
    assert main(args) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("error: ") and "focal.yaml: loss.alpha" in line, line
    assert captured.out.startswith("note: pinned on the command line for every trial: ")
    assert not ray.is_initialized() and not out.exists()
    assert list((isolated / "cwd").iterdir()) == []


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (lambda tmp: tmp / "afile", "is a file; expected a folder"),
        (lambda tmp: tmp / "afile" / "out", "afile is a file, not a folder"),
        (lambda tmp: "/sys/loss-search-out", "cannot write in /sys ("),
    ],
)
def test_an_output_dir_that_cannot_be_written_is_one_line_exit_2(where, expected, isolated, capsys):
    (isolated / "afile").write_text("mine\n")
    out = where(isolated)
    assert main(["space=elf", f"output_dir={out}"]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith(f"error: output_dir={out}: ") and expected in line, line
    assert captured.out == "" and not ray.is_initialized()
    assert (isolated / "afile").read_text() == "mine\n"
    assert sorted(p.name for p in isolated.iterdir()) == ["afile", "cwd"]
    assert list((isolated / "cwd").iterdir()) == []


def test_an_unsupported_mlflow_scheme_from_the_environment_is_one_line(
    isolated, capsys, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "ftp://x/y")
    assert main([f"output_dir={isolated / 'out'}"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "error: MLflow tracking URI ftp://x/y: MLflow has no tracking store" in line
    assert not ray.is_initialized() and not (isolated / "out").exists()
    assert list((isolated / "cwd").iterdir()) == []  # no mlflow.db


def test_an_unreachable_server_of_a_supported_scheme_is_not_a_typo():
    """It stays an outage the mirror rides out: the scheme check passes it."""
    from mirrors.uri import check_scheme

    for uri in ("http://127.0.0.1:9", "postgresql+psycopg2://u@127.0.0.1:9/db", "sqlite:///x.db"):
        check_scheme(uri)


FRESH_PROCESS_CASES = (
    "space_malformed_yaml",
    "data_missing_label_column",
    "data_constant_features",
)


def test_a_fresh_process_exits_2_with_one_line(tmp_path):
    """The same cases through `python -m search.run`, run side by side (imports dominate)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), SECRET_VAR: SECRET}
    env.pop("RAY_ADDRESS", None)
    runs = {}
    for name in FRESH_PROCESS_CASES:
        folder = tmp_path / name
        (folder / "files").mkdir(parents=True)
        (folder / "cwd").mkdir()
        argv = [*CASES[name][0](folder / "files"), f"output_dir={folder / 'out'}"]
        runs[name] = subprocess.Popen(
            [sys.executable, "-m", "search.run", *argv],
            cwd=folder / "cwd",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, proc in runs.items():
        stdout, stderr = proc.communicate(timeout=180)
        lines = stderr.strip().splitlines()
        assert proc.returncode == 2, (name, stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, stderr)
        assert all(f in lines[0] for f in CASES[name][1]), (name, lines[0])
        assert stdout == ""
        assert not (tmp_path / name / "out").exists()
        assert list((tmp_path / name / "cwd").iterdir()) == []


# ---------------------------------------------------------------- accepted on purpose


def test_exponent_without_a_dot_is_a_number_for_float_parameters(tmp_path):
    """YAML 1.1 reads `1e-5` as a string; float parameters take it as the number it spells."""
    path = tmp_path / "lr.yaml"
    path.write_text("params:\n  train.lr: {loguniform: [1e-5, 1e-2]}\n")
    assert load_space(str(path)).params["train.lr"].dist == LogUniform(1e-5, 1e-2)


def test_constant_features_are_dropped_when_others_remain(tmp_path):
    """A constant column among useful ones is dropped (and recorded), not an error."""
    from trainables.data.presets import build_dataset

    path = tmp_path / "t.csv"
    _frame().assign(c=3.0).to_csv(path, index=False)
    data = build_dataset("table", {"path": str(path), "label": "label", "features": ["a", "c"]})
    assert data.meta["features"] == ["a"] and data.meta["dropped_features"] == ["c"]
