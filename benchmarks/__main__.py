"""Run benchmark parts, print and save their figures: `python -m benchmarks [PART ...]`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks import PARTS, Figures, load, machine, target_rows
from search.cluster import keep_local

RESULTS_DIR = Path("bench-results")  # default JSON location: bench-results/<part>.json


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_table(name: str, figures: Figures, host: dict) -> None:
    """Print the machine and one `figure  value` row per figure."""
    print(f"== {name} ==")
    for key, value in host.items():
        print(f"  {key:<24} {value}")
    print("  " + "-" * 40)
    width = max(map(len, figures), default=0)
    for key, value in figures.items():
        print(f"  {key:<{width}}  {_format(value)}")


def print_targets(rows: list[tuple], quick: bool) -> None:
    """One line per target: part, what, measured, target, met."""
    print("== targets ==" + (" (--quick: small sizes, one repeat; no verdict)" if quick else ""))
    head = ("part", "what", "measured", "target", "met")
    lines = [head] + [tuple(_format(v) if v is not None else "-" for v in row) for row in rows]
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run benchmark parts and save their figures."
    )
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"parts to run {list(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, for a smoke test")
    parser.add_argument("--json", type=Path, help="output file (one part only)")
    parser.add_argument("--trials", type=int, help="harness: trials per search (default 32)")
    args = parser.parse_args(argv)
    parts = args.parts or list(PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}: expected some of {list(PARTS)}")
    if args.json is not None and len(parts) != 1:
        parser.error("--json names one file: give exactly one part")
    keep_local("")  # the benchmarks' local Ray on 127.0.0.1, as a search's
    host = machine()
    targets = []
    for name in parts:
        options = {"trials": args.trials} if name == "harness" and args.trials else {}
        figures = load(name)(args.quick, **options)
        print_table(name, figures, host)
        targets += target_rows(name, figures)
        path = args.json or RESULTS_DIR / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "part": name,
            "quick": args.quick,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": host,
            "figures": figures,
        }
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"  wrote {path}")
    print_targets(targets, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
