"""Security (issue 8): safe loaders only, no interpolation of secrets, weights-only checkpoints,
resume only from this tool's folders, Ray without a dashboard on loopback, CVE floors.

Tests marked `xfail(strict=True)` state a requirement the product does not meet yet (the reason
names the fix); once it is fixed they pass, strict xfail turns that into a failure, and the marker
must go.
"""

from __future__ import annotations

import ast
import contextlib
import ipaddress
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import mlflow_server
import pytest
import ray
import torch
import yaml
from helpers import descendants, listening, loopback
from packaging.requirements import Requirement
from packaging.version import Version

import search.driver
from benchmarks.harness import ray_session
from search.cluster import connect
from search.cluster.info import SINGLE_NODE_ENV
from search.config import flatten_config, load_config
from search.outputs import MARKER, prepare_output
from search.run import main, resolve
from spaces import load_space
from spaces.safe_yaml import _Loader
from trainables.errors import UserInputError
from trainables.trial.checkpoints import CHECKPOINT_FILE, load_state

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("search", "spaces", "trainables", "reports")
SECRET_VAR, SECRET = "LOSS_SEARCH_SECRET", "s3cr3t-token-value"


def _product_sources() -> dict[str, ast.Module]:
    files = sorted(p for d in PRODUCT for p in (ROOT / d).rglob("*.py"))
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(), str(p)) for p in files}


def _dotted(node: ast.AST) -> str:
    """`yaml.load` for the call target `yaml.load`; '' for anything that is not a plain name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


FORBIDDEN_CALLS = {
    "eval": "eval of text",
    "exec": "exec of text",
    "yaml.unsafe_load": "unsafe YAML",
    "yaml.full_load": "YAML with Python tags",
    "yaml.load_all": "YAML without a safe loader",
    "pickle.load": "pickle from a file",
    "pickle.loads": "pickle from bytes",
    "cloudpickle.load": "pickle from a file",
    "cloudpickle.loads": "pickle from bytes",
    "marshal.loads": "marshal from bytes",
    "instantiate": "object instantiation from config",
    "hydra.utils.instantiate": "object instantiation from config",
}
SAFE_LOADERS = ("_Loader", "yaml.SafeLoader", "yaml.CSafeLoader")


def _violations(path: str, tree: ast.Module) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in ("_target_", "0.0.0.0"):
            out.append(f"{path}:{node.lineno}: string {node.value!r}")
        if not isinstance(node, ast.Call):
            continue
        name, kw = _dotted(node.func), {k.arg: k.value for k in node.keywords}
        where = f"{path}:{node.lineno}: {name}"
        if name in FORBIDDEN_CALLS:
            out.append(f"{where}: {FORBIDDEN_CALLS[name]}")
        if (
            name == "yaml.load"
            and _dotted(kw.get("Loader", ast.Constant(None))) not in SAFE_LOADERS
        ):
            out.append(f"{where}: without a safe Loader")
        weights_only = kw.get("weights_only")
        if name == "torch.load" and not (
            isinstance(weights_only, ast.Constant) and weights_only.value is True
        ):
            out.append(f"{where}: without weights_only=True")
        shell = kw.get("shell")
        if isinstance(shell, ast.Constant) and shell.value is True:
            out.append(f"{where}: shell=True")
    return out


def test_the_product_has_no_eval_unsafe_loaders_or_instantiation():
    sources = _product_sources()
    assert len(sources) > 20
    found = [v for path, tree in sources.items() for v in _violations(path, tree)]
    assert found == []
    torch_loads = [
        path
        for path, tree in sources.items()
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and _dotted(n.func) == "torch.load"
    ]
    assert torch_loads == [
        "trainables/trial/checkpoints.py"
    ]  # the one checkpoint reader, checked above


def test_the_scan_catches_what_it_forbids():
    bad = (
        "import yaml, torch, pickle\n"
        "eval('1')\nyaml.load(s)\nyaml.load(s, Loader=yaml.Loader)\nyaml.unsafe_load(s)\n"
        "torch.load(p)\ntorch.load(p, weights_only=False)\npickle.loads(b)\n"
        "x = {'_target_': 'os.system'}\n"
    )
    assert len(_violations("bad.py", ast.parse(bad))) == 8


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            names |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom):
            names.add(n.module or "")
    return names


def test_only_the_config_module_uses_omegaconf():
    """OmegaConf resolves interpolations: it may only see overrides that search.config vetted."""
    users = {
        path
        for path, tree in _product_sources().items()
        if any(name.split(".")[0] in ("omegaconf", "hydra") for name in _imports(tree))
    }
    assert users == {"search/config.py"}


# ---------------------------------------------------------------- space files


def test_space_files_use_a_safe_loader_without_python_objects(tmp_path):
    assert issubclass(_Loader, yaml.SafeLoader)
    sentinel = tmp_path / "executed"
    path = tmp_path / "evil.yaml"
    for tag in ("!!python/object/apply:os.mkdir", "!!python/object/new:os.mkdir", "!custom"):
        path.write_text(f"params:\n  train.lr: {tag} ['{sentinel}']\n")
        with pytest.raises(UserInputError, match=r"evil\.yaml:2: tag .* is not allowed"):
            load_space(str(path))
        assert not sentinel.exists()
    path.write_text("params:\n  train.lr: !!python/name:os.system\n")
    with pytest.raises(UserInputError, match="is not allowed"):
        load_space(str(path))


def test_space_files_instantiate_nothing_and_interpolate_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_VAR, SECRET)
    path = tmp_path / "s.yaml"
    path.write_text("params:\n  _target_: os.system\n")
    with pytest.raises(UserInputError, match=r"params\._target_: unknown trial key"):
        load_space(str(path))
    text = f"${{oc.env:{SECRET_VAR}}} and ${{oc.env:{SECRET_VAR},x}}"
    path.write_text(f"description: '{text}'\nparams:\n  train.lr: 0.01\n")
    space = load_space(str(path))
    assert space.description == text  # kept literally, never resolved
    assert SECRET not in space.describe()


# ---------------------------------------------------------------- overrides


@pytest.mark.parametrize(
    "override",
    [
        f"mlflow.experiment=${{oc.env:{SECRET_VAR}}}",
        f"mlflow.tracking_uri=sqlite:///${{oc.env:{SECRET_VAR}}}.db",
        f"name=run-${{oc.env:{SECRET_VAR},default}}",
        f"output_dir=${{oc.env:{SECRET_VAR}}}",
        f"data.path=${{oc.env:{SECRET_VAR}}}",
        f"data.ownership={{share: {{signal: '${{oc.env:{SECRET_VAR}}}'}}}}",
        f"data.features=[a, '${{oc.env:{SECRET_VAR}}}']",
        "name=${space}",
        f"name=\\${{oc.env:{SECRET_VAR}}}",
        'name=${oc.decode:"[1, 2]"}',
    ],
)
def test_overrides_never_interpolate(override, monkeypatch):
    monkeypatch.setenv(SECRET_VAR, SECRET)
    with pytest.raises(UserInputError, match=r"interpolation \$\{\.\.\.\} is not allowed") as info:
        load_config([override])
    assert SECRET not in str(info.value)
    assert override.partition("=")[0] in str(info.value)


def test_logged_params_hold_what_was_typed(monkeypatch):
    """MLflow logs flatten_config(cfg.to_dict()): plain values only, no environment reads."""
    monkeypatch.setenv(SECRET_VAR, SECRET)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", SECRET)
    cfg = load_config(["mlflow.experiment=plain", "name=run-$HOME-%(x)s", "data.note={a: $PATH}"])
    params = flatten_config(cfg.to_dict())
    assert params["mlflow.experiment"] == "plain" and params["name"] == "run-$HOME-%(x)s"
    assert params["data.note.a"] == "$PATH"
    assert all(SECRET not in str(v) for v in params.values())


# ---------------------------------------------------------------- checkpoints


class _Evil:
    """Unpickling this calls os.mkdir(path): what a crafted checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


def test_checkpoints_load_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.AdamW(model.parameters())
    model(torch.ones(4, 3)).sum().backward()
    optim.step()
    trainable = {
        "model": model.state_dict(),
        "optim": optim.state_dict(),
        "gen": torch.Generator().manual_seed(1).get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    state = {
        "state": trainable,
        "epoch": 3,
        "best": 0.5,
        "best_epoch": 2,
        "train_time_s": 1.25,
    }
    torch.save(state, tmp_path / CHECKPOINT_FILE)
    loaded = load_state(tmp_path)
    assert loaded["epoch"] == 3
    assert torch.equal(loaded["state"]["model"]["weight"], model.state_dict()["weight"])

    sentinel = tmp_path / "executed"
    torch.save({"state": _Evil(sentinel)}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only"):
        load_state(tmp_path)
    assert not sentinel.exists()


# ---------------------------------------------------------------- resume


@pytest.fixture
def saved_search(tmp_path, monkeypatch):
    """An output folder written by this tool (marker, config.yaml, space.yaml), no Ray."""

    def tripwire(*args, **kwargs):
        raise AssertionError("the CLI went on to start Ray")

    monkeypatch.setattr(search.driver, "connect", tripwire)
    monkeypatch.setenv(SECRET_VAR, SECRET)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    cfg = load_config([f"output_dir={out}", "search.num_samples=7"])
    prepare_output(cfg, load_space("elf"))
    return out


def test_resume_needs_the_marker(saved_search, tmp_path, capsys):
    assert json.loads((saved_search / MARKER).read_text())["tool"] == "loss-search"
    cfg, space = resolve([f"resume={saved_search}"], {})
    assert cfg.search.num_samples == 7 and cfg.resume == str(saved_search)
    assert space.path == (saved_search / "space.yaml").resolve()  # the folder's copy

    foreign = tmp_path / "foreign"
    shutil.copytree(saved_search, foreign)
    (foreign / MARKER).unlink()
    assert main([f"resume={foreign}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and f"no {MARKER} in it" in err and str(foreign) in err


def test_resume_refuses_interpolation_planted_in_the_saved_config(saved_search, capsys):
    config = saved_search / "config.yaml"
    saved = yaml.safe_load(config.read_text())
    saved["mlflow"]["experiment"] = f"${{oc.env:{SECRET_VAR}}}"
    config.write_text(yaml.safe_dump(saved))
    assert main([f"resume={saved_search}"]) == 2
    err = capsys.readouterr().err
    assert "mlflow.experiment" in err and "interpolation" in err and SECRET not in err


def _plant_python_tag(saved_search: Path) -> Path:
    sentinel = saved_search.parent / "executed"
    config = saved_search / "config.yaml"
    config.write_text(
        config.read_text() + f"extra: !!python/object/apply:os.mkdir ['{sentinel}']\n"
    )
    return sentinel


def test_resume_never_runs_code_from_the_saved_config(saved_search):
    sentinel = _plant_python_tag(saved_search)
    try:
        code = main([f"resume={saved_search}"])
    except yaml.YAMLError:
        code = None
    assert code != 0
    assert not sentinel.exists()


def test_a_tampered_saved_config_is_one_line_exit_2(saved_search, capsys):
    _plant_python_tag(saved_search)
    assert main([f"resume={saved_search}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "config.yaml" in err


# ---------------------------------------------------------------- Ray and servers


@pytest.fixture
def fake_ray(monkeypatch):
    """Record ray.init's arguments instead of starting Ray."""
    calls: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(ray, "nodes", lambda: [{"Alive": True}])
    return calls


def test_a_local_ray_starts_without_dashboard_on_loopback(fake_ray):
    info = connect("")
    assert info.address == "" and info.nodes == 1
    (kwargs,) = fake_ray
    assert kwargs["include_dashboard"] is False
    assert not any(k.startswith("_") for k in kwargs)  # Ray's public arguments only


def test_a_local_ray_never_joins_another_cluster(fake_ray):
    connect("")
    assert fake_ray[0].get("address") == "local"


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _env_without_switch() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in (SINGLE_NODE_ENV, "RAY_ADDRESS")}


@pytest.mark.parametrize(("address", "switch"), [("", "0"), ("auto", None)])
def test_the_cli_keeps_a_local_ray_on_loopback_before_importing_ray(tmp_path, address, switch):
    """python -m search.run sets Ray's single-node switch before Ray is imported, for a local Ray
    only; a fresh process, so that nothing of this one's imports counts."""
    extra = [f"cluster.address={address}"] if address else []
    code = (
        "import os, sys\n"
        "from search.run import main\n"
        f"args = ['preflight=only', 'output_dir={tmp_path}', *{extra!r}]\n"
        "assert main(args) == 0\n"
        "import ray\n"
        f"print(os.environ.get('{SINGLE_NODE_ENV}'), ray.util.get_node_ip_address())\n"
    )
    done = _python(code, _env_without_switch())
    assert done.returncode == 0, done.stderr
    value, host = done.stdout.split()[-2:]
    assert value == str(switch)
    if switch == "0":
        assert host == "127.0.0.1"


def test_a_local_ray_is_refused_when_ray_was_imported_without_the_switch():
    """Ray imported first (no switch): connect("") starts nothing and says why in one line."""
    code = (
        "import ray\n"
        "host = ray.util.get_node_ip_address()\n"
        "from search.cluster import connect\n"
        "from trainables.errors import UserInputError\n"
        "try:\n"
        "    connect('')\n"
        "except UserInputError as e:\n"
        "    print(host, ray.is_initialized(), e)\n"
    )
    done = _python(code, _env_without_switch())
    assert done.returncode == 0, done.stderr
    host, started, message = done.stdout.strip().split(" ", 2)
    if host == "127.0.0.1":
        pytest.skip("this machine has no route off loopback: a local Ray binds 127.0.0.1 anyway")
    assert started == "False"
    assert message.startswith(f"a local Ray would listen on {host}, not 127.0.0.1")
    assert f"{SINGLE_NODE_ENV}=0" in message


@pytest.mark.slow  # starts a real Ray
@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("starter", ["search", "bench"])
def test_a_local_ray_listens_on_loopback_only(monkeypatch, starter):
    """The Ray a search starts (search.cluster.connect) and the one the benchmarks start."""
    temp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray's unix socket paths are capped
    monkeypatch.setenv("RAY_TMPDIR", temp)  # never find another session's cluster
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    try:
        with contextlib.ExitStack() as started:
            if starter == "search":
                connect("")
            else:
                started.enter_context(ray_session())
            assert ray.get(ray.remote(lambda: 1).remote()) == 1  # a worker is up too
            addresses = listening(descendants(os.getpid()))
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    assert addresses
    assert [a for a in addresses if not loopback(a)] == []


def test_the_loopback_check_tells_addresses_apart():
    assert loopback(ipaddress.ip_address("127.0.0.1"))
    assert loopback(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert loopback(ipaddress.ip_address("::1"))
    assert not loopback(ipaddress.ip_address("0.0.0.0"))
    assert not loopback(ipaddress.ip_address("::"))
    assert not loopback(ipaddress.ip_address("192.0.2.2"))


def test_the_mlflow_server_binds_loopback():
    assert mlflow_server.HOST == "127.0.0.1"


# ---------------------------------------------------------------- dependency floors


# package: (floor, a version the floor must exclude, the advisory)
CVE_FLOORS = {
    "torch": ("2.6", "2.5.1", "CVE-2025-32434: torch.load(weights_only=True) code execution"),
    "pyarrow": ("14.0.1", "14.0.0", "CVE-2023-47248: IPC/Parquet deserialisation"),
}


@pytest.mark.parametrize("package", list(CVE_FLOORS))
def test_dependency_floors_exclude_known_cves(package):
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    floor, vulnerable, advisory = CVE_FLOORS[package]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    (req,) = [r for r in reqs if r.name == package]
    assert not req.specifier.contains(vulnerable), advisory
    assert req.specifier.contains(floor)
    installed = Version(version(package))
    assert Version(installed.public) >= Version(floor), f"installed {installed}: {advisory}"
