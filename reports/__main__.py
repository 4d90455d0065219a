"""`python -m reports <output_dir> [--objectives a:max,b:min]`: regenerate a search's report.

Or from MLflow, without the output folder: `python -m reports --mlflow-uri URI --run-id PARENT_ID`
(or `--experiment NAME`: its latest search) `[--out DIR]`, writing to DIR (./report-<run id>).
Reads only what the search wrote; trains nothing. Any error prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.defaults import EPOCH_RULE, HV_MARGIN
from reports.rows import EPOCH_RULES
from reports.write import write_report
from trainables.errors import UserInputError


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"reports: error: {message}", file=sys.stderr)
        sys.exit(2)


def parse_reference(text: str | None) -> dict[str, float] | None:
    """ "val_macro_f1=0.2,train_time_s=600" → {metric: value}."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        metric, sep, value = item.partition("=")
        try:
            out[metric.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not metric.strip():
            raise UserInputError(f"--reference {item!r}: expected metric=number, e.g. val_ece=0.2")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m reports", description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", help="a search output folder (holds record.jsonl)")
    parser.add_argument(
        "--mlflow-uri", help="read the search from this MLflow tracking URI instead"
    )
    parser.add_argument("--run-id", help="with --mlflow-uri: the search's parent run id")
    parser.add_argument(
        "--experiment", help="with --mlflow-uri: use its latest search (parent run)"
    )
    parser.add_argument(
        "--out", help="with --mlflow-uri: report folder (default ./report-<run id>)"
    )
    parser.add_argument("--objectives", help="metric:max|min,... (default: config.yaml's)")
    parser.add_argument("--reference", help="hypervolume reference point, metric=value,...")
    parser.add_argument(
        "--margin",
        type=float,
        default=HV_MARGIN,
        help=f"reference-point margin as a fraction of range (default {HV_MARGIN})",
    )
    parser.add_argument(
        "--epoch",
        choices=list(EPOCH_RULES),
        default=EPOCH_RULE,
        help=f"which epoch of a trial counts (default {EPOCH_RULE})",
    )
    args = parser.parse_args(argv)
    if (args.output_dir is None) == (args.mlflow_uri is None):
        parser.error("give either an output folder or --mlflow-uri (with --run-id or --experiment)")
    if args.mlflow_uri is not None and (args.run_id is None) == (args.experiment is None):
        parser.error("--mlflow-uri needs exactly one of --run-id and --experiment")
    if args.mlflow_uri is None and (args.run_id or args.experiment or args.out):
        parser.error("--run-id, --experiment and --out go with --mlflow-uri")
    try:
        options = {
            "reference": parse_reference(args.reference),
            "margin": args.margin,
            "epoch_rule": args.epoch,
        }
        if args.mlflow_uri is not None:
            from reports.mlflow_run import write_mlflow_report

            folder = write_mlflow_report(
                args.mlflow_uri,
                args.run_id,
                args.experiment,
                Path(args.out) if args.out else None,
                args.objectives,
                **options,
            )
        else:
            folder = write_report(args.output_dir, args.objectives, **options)
    except UserInputError as e:
        print(f"reports: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
