"""The docs cite only what exists, and the site builds.

Scanned: README.md, CHANGELOG.md, ARCHITECTURE.md and docs/**/*.md. What counts as a citation:

- a link or image target (`[text](target)`): it must exist relative to the citing file (web links
  and in-page anchors are not checked; the pages `docs/hooks.py` generates count as existing);
- a repository path written as code (inline or in a fenced block): a token with a `/` whose first
  part is a project folder (`search/confirm.py`, `spaces/*.yaml`, `search/cluster/`), or a bare
  top-level file name (`pyproject.toml`, `setup.sh`, `CHANGELOG.md`); paths of a search's output
  folder (`report/pareto.md`, `outputs/...`) start elsewhere and are not checked;
- a dotted Python name written as code that starts with a project package (`record`,
  `trainables`, `spaces`, `mirrors`, `reports`, `search`, `benchmarks`, `examples`):
  `trainables.params.Param`, `examples.user_model:factory`, `python -m search.run`, and the
  modules and names of a fenced block's `from X import a, b`. It must resolve: the longest prefix
  that is a module, then attributes. File names (`record.jsonl`) are not names, and config keys that happen to start with a package name
  (`search.metric`, `search.num_samples`) are search keys, not Python names: every key of
  `search.config.known_keys()`, every trial key and the MLflow tag names of `mirrors.store`
  (`search.output_dir`) are skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "record",
    "trainables",
    "spaces",
    "mirrors",
    "reports",
    "search",
    "benchmarks",
    "examples",
)
FOLDERS = (*PACKAGES, "tests", "docs", ".ci")  # a code path starting here is a repository path
ROOT_FILE = re.compile(r"^(?:[A-Z]+\.md|[\w.-]+\.(?:toml|sh|yml))$")  # README.md, setup.sh, ...
FENCE = re.compile(r"^(```|~~~)[^\n]*\n(.*?)^\1[ \t]*$", re.S | re.M)
SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SPLIT = re.compile(r"[\s=(),;'\"\[\]{}<>|]+")
PATH = re.compile(r"^[\w.*-]+(?:/[\w.*-]+)*/?$")
NAME = re.compile(rf"^(?:{'|'.join(PACKAGES)})(?:\.\w+)*(?::\w+)?$")
# a dotted token ending in one of these is a file name (`record.jsonl`), not a Python name
FILE_SUFFIXES = {
    "py",
    "md",
    "json",
    "jsonl",
    "yaml",
    "yml",
    "csv",
    "html",
    "png",
    "txt",
    "db",
    "journal",
}
PYTHON_M = re.compile(r"python\S*\s+-m\s+([\w.]+)")
FROM_IMPORT = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+([\w\s,]+)$", re.M)


def doc_files() -> list[Path]:
    top = [ROOT / n for n in ("README.md", "CHANGELOG.md", "ARCHITECTURE.md")]
    return top + sorted((ROOT / "docs").rglob("*.md"))


@cache
def generated_pages() -> frozenset[Path]:
    """The pages docs/hooks.py adds at build time (they are never in the tree)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return frozenset((ROOT / "docs" / p).resolve() for p in hooks.PAGES)


@cache
def config_keys() -> frozenset[str]:
    """Search keys, trial keys and the MLflow tags the mirror sets: dotted, but not Python names."""
    import mirrors.store
    from search.config import known_keys
    from trainables.params import PARAMS

    tags = {v for k, v in vars(mirrors.store).items() if k.endswith("_TAG")}
    return frozenset(known_keys()) | frozenset(PARAMS) | frozenset(tags)


def _code(text: str) -> tuple[list[str], list[str]]:
    """(fenced blocks, inline code spans) of a Markdown text."""
    blocks = [m.group(2) for m in FENCE.finditer(text)]
    rest = FENCE.sub("", text)
    spans = [m.group(2).strip() for m in SPAN.finditer(rest)]
    return blocks, spans


def _links(text: str) -> list[str]:
    rest = FENCE.sub("", text)
    rest = SPAN.sub("", rest)
    return [m.group(1) for m in LINK.finditer(rest)]


def _is_path(token: str) -> bool:
    if not PATH.match(token):
        return False
    if "/" in token:
        return token.split("/", 1)[0] in FOLDERS
    return bool(ROOT_FILE.match(token))


def _path_exists(token: str) -> bool:
    token = token.split("::", 1)[0]
    if any(c in token for c in "*?"):
        return any(ROOT.glob(token))
    return (ROOT / token).exists()


def resolves(name: str) -> bool:
    """`package.module.attr...` (or `package.module:attr`) names a module or an object in one."""
    module_part, _, attr = name.partition(":")
    parts = module_part.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            continue
        rest = parts[i:] + ([attr] if attr else [])
        if not rest:
            return True  # a module: found without running it
        obj = importlib.import_module(module)
        for part in rest:
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    return False


def problems(text: str, source: Path) -> list[str]:
    """Every cited path that does not exist and dotted name that does not resolve in `text`."""
    out = []
    for target in _links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path = (source.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() and path not in generated_pages():
            out.append(f"{source.name}: link to {target!r}: no such file")
    blocks, spans = _code(text)
    tokens = [t for s in [*spans, *blocks] for t in SPLIT.split(s)]
    for token in tokens:
        token = token.rstrip(".:,")
        if not token:
            continue
        if _is_path(token):
            if not _path_exists(token):
                out.append(f"{source.name}: path {token!r}: no such file or folder")
        elif "." in token or ":" in token:
            if token.rsplit(".", 1)[-1] in FILE_SUFFIXES or token in config_keys():
                continue
            if NAME.match(token) and not resolves(token):
                out.append(f"{source.name}: {token!r}: no such module or attribute")
    for chunk in [*spans, *blocks]:
        names = [m.group(1) for m in PYTHON_M.finditer(chunk)]
        for m in FROM_IMPORT.finditer(chunk):
            names += [f"{m.group(1)}.{n.strip()}" for n in m.group(2).split(",") if n.strip()]
        for name in names:
            if name.split(".")[0] in PACKAGES and not resolves(name):
                out.append(f"{source.name}: {name!r}: no such module or attribute")
    return sorted(set(out))


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch):
    """benchmarks/ and examples/ are not installed: import them from the checkout."""
    monkeypatch.syspath_prepend(str(ROOT))


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_cite_only_what_exists(path):
    assert problems(path.read_text(encoding="utf-8"), path) == []


def test_the_checker_catches_a_bad_path_and_a_bad_name():
    good = (
        "See `search/confirm.py`, `spaces/*.yaml`, `search/cluster/`, `pyproject.toml`, "
        "`trainables.params.Param(key, default)`, `examples.user_model:factory`, "
        "`python -m search.run space=elf`, [usage](docs/guide/usage.md), "
        "`search.metric`, `search.num_samples=8`, `record.jsonl`, `report/pareto.md` and `outputs/elf-1/`.\n"
        "```python\nfrom trainables.losses.trial_loss import TrialLoss\n```\n"
    )
    assert problems(good, ROOT / "README.md") == []
    bad = (
        "See `tests/test_optim.py`, `trainables.optim.AdamW`, `trainables.params.Nope`, "
        "`python -m search.nope`, [gone](docs/guide/nope.md), `examples.user_model:nope`.\n"
        "```python\nfrom trainables.losses.trial_loss import NoSuchLoss\n```\n"
    )
    found = problems(bad, ROOT / "README.md")
    for cited in (
        "tests/test_optim.py",
        "trainables.optim.AdamW",
        "trainables.params.Nope",
        "search.nope",
        "docs/guide/nope.md",
        "examples.user_model:nope",
        "trainables.losses.trial_loss.NoSuchLoss",
    ):
        assert any(cited in p for p in found), (cited, found)


def test_the_site_builds_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (bash setup.sh --dev installs it)")
    config = ROOT / "mkdocs.yml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(config),
            "-d",
            str(tmp_path / "site"),
        ],
        cwd=tmp_path,  # not the checkout: `python -m` would put it on sys.path, the CLI does not
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's banner about MkDocs 2
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for page in (
        "index.html",
        "reference/search-keys/index.html",
        "reference/trial-keys/index.html",
    ):
        assert (tmp_path / "site" / page).exists(), page
