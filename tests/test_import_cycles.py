"""No import circles among the project's modules: the module graph (grimp, import-linter's own graph
library; imports under `if TYPE_CHECKING:` and inside functions count too) has no cycle. A failure
names each cycle, one import per step."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("record", "trainables", "spaces", "mirrors", "reports", "search", "benchmarks")


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.find_modules_directly_imported_by(nxt)))))
                    break
                if nxt in on_stack:
                    low[module] = min(low[module], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def describe_cycle(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One cycle through `component`'s first module, each step with its file and line."""
    first = component[0]
    second = min(m for m in graph.find_modules_directly_imported_by(first) if m in component)
    chain = (first, *graph.find_shortest_chain(importer=second, imported=first))
    steps = []
    for importer, imported in zip(chain, chain[1:], strict=False):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = f":{details[0]['line_number']}" if details else ""
        steps.append(f"  {importer}{where} imports {imported}")
    return "\n".join(steps)


def project_graph() -> grimp.ImportGraph:
    for name in PACKAGES:  # this checkout's code, not an installed copy elsewhere
        origin = importlib.util.find_spec(name).origin
        assert Path(origin).resolve().is_relative_to(ROOT), f"{name} is imported from {origin}"
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def test_no_import_cycles():
    graph = project_graph()
    new = strongly_connected(graph)
    report = "\n\n".join(f"{', '.join(c)}:\n{describe_cycle(graph, c)}" for c in new)
    assert not new, f"import cycle(s) among the project's modules:\n\n{report}"


def test_a_cycle_is_found_and_named():
    """The finder on a hand-built graph: a → b → c → a is one cycle, d → a is none."""
    graph = grimp.ImportGraph()
    for module in "abcd":
        graph.add_module(module)
    for importer, imported in (("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")):
        graph.add_import(importer=importer, imported=imported, line_number=1, line_contents="")
    (component,) = strongly_connected(graph)
    assert component == ["a", "b", "c"]
    assert describe_cycle(graph, component).splitlines() == [
        "  a:1 imports b",
        "  b:1 imports c",
        "  c:1 imports a",
    ]
