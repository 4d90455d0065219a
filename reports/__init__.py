"""Pareto reports of a finished (or interrupted) search: compute a front, write a report."""

from reports.analysis import Analysis, analyse
from reports.load import Run, load_run
from reports.objectives import Objective, parse_objectives, to_minimisation
from reports.pareto import hypervolume, knee, nadir_reference, nondominated, pareto_ranks
from reports.write import write_report

__all__ = [
    "Analysis",
    "Objective",
    "Run",
    "analyse",
    "hypervolume",
    "knee",
    "load_run",
    "nondominated",
    "pareto_ranks",
    "parse_objectives",
    "nadir_reference",
    "to_minimisation",
    "write_report",
]
