"""Pareto reports of a finished (or interrupted) search: compute a front, write a report."""

from reports.analysis import Analysis, analyse
from reports.load import Run, load_run
from reports.objectives import Objective, parse_objectives, to_minimisation
from reports.pareto import hypervolume, knee, nondominated, pareto_ranks, reference_point
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
    "reference_point",
    "to_minimisation",
    "write_report",
]
