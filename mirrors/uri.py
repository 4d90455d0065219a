"""Where runs go: resolve the tracking URI, check it before any trial, and say how to browse it."""

from __future__ import annotations

import functools
import shlex
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from mirrors.names import sanitize_key
from trainables.errors import UserInputError

DEFAULT_DB_NAME = "mlflow.db"
# A server that has not answered in 5 s is down or misconfigured; waiting longer delays the error.
REACHABLE_TIMEOUT_S = 5.0
_SQLITE = "sqlite:///"
# A scheme no store registers: asking MLflow's client for it reports the schemes it supports.
_PROBE_URI = "loss-search-no-such-scheme:"


def resolve_tracking_uri(configured: str | None, env_value: str | None, cwd: Path) -> str:
    """`configured`, else `env_value` (MLFLOW_TRACKING_URI), else `sqlite:///<cwd>/mlflow.db`.

    A relative SQLite path is made absolute against `cwd` so that the URI means the same file
    wherever it is read later (a resumed search, `mlflow ui`).
    """
    for candidate in (configured, env_value):
        if candidate and candidate.strip():
            return _absolute_sqlite(candidate.strip(), cwd)
    return f"{_SQLITE}{(Path(cwd) / DEFAULT_DB_NAME).resolve()}"


def _absolute_sqlite(uri: str, cwd: Path) -> str:
    if not uri.startswith(_SQLITE) or uri == f"{_SQLITE}:memory:":
        return uri
    path = uri[len(_SQLITE) :]
    if path.startswith("/"):
        return uri
    return f"{_SQLITE}{(Path(cwd) / path).resolve()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:////abs/path` URI, else None."""
    if not uri.startswith(_SQLITE) or uri.endswith(":memory:"):
        return None
    path = uri[len(_SQLITE) :].split("?", 1)[0]
    return Path(path) if path.startswith("/") else None


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


@functools.cache
def supported_schemes() -> tuple[str, ...]:
    """The URI schemes MLflow's tracking-store registry builds a store for, plug-ins' included
    ('' is a plain path), as its public client reports them for a scheme it has no store for."""
    from mlflow import MlflowClient
    from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException

    try:
        MlflowClient(_PROBE_URI)
    except UnsupportedModelRegistryStoreURIException as e:
        return tuple(e.supported_uri_schemes)
    return ()  # a plug-in registered even the probe's scheme: MLflow judges every URI itself


def uri_scheme(uri: str) -> str:
    """The scheme MLflow picks a tracking store by: a database URI's dialect without its driver
    (postgresql+psycopg2 → postgresql); '' for a plain path (a drive letter, C:, included)."""
    scheme = urllib.parse.urlparse(uri).scheme.partition("+")[0]
    return "" if len(scheme) == 1 else scheme


def check_scheme(uri: str) -> None:
    """Raise UserInputError naming `uri` and the supported schemes when MLflow has no tracking
    store for its scheme: a typo that no retry fixes (an unreachable server of a supported scheme
    is an outage the mirror rides out)."""
    supported = supported_schemes()
    scheme = uri_scheme(uri)
    if not supported or scheme in supported:
        return
    names = ", ".join(s for s in supported if s)
    raise UserInputError(
        f"MLflow tracking URI {uri}: MLflow has no tracking store for scheme {scheme!r}; expected "
        f"one of the schemes {names} (e.g. sqlite:///PATH/mlflow.db, http://HOST:PORT) or a "
        "folder path in mlflow.tracking_uri or MLFLOW_TRACKING_URI"
    )


def check_reachable(uri: str, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
    """Raise UserInputError naming `uri` when MLflow has no store for its scheme (`check_scheme`),
    an http(s) server does not answer within `timeout_s` or a SQLite database's folder does not
    exist; other URIs are left to MLflow.

    Any HTTP answer (even 401/403/404) counts as reachable: the server is there.
    """
    check_scheme(uri)
    if is_http(uri):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
                return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise UserInputError(
                f"MLflow tracking server {uri} is not reachable ({reason}); start it "
                f"(mlflow server --host 127.0.0.1 --port PORT) or set tracking_uri / "
                f"MLFLOW_TRACKING_URI to a reachable server or to sqlite:///PATH/mlflow.db"
            ) from None
    database = sqlite_path(uri)
    if database is not None and not database.parent.is_dir():
        raise UserInputError(
            f"MLflow tracking URI {uri}: folder {database.parent} does not exist; create it or "
            f"point tracking_uri / MLFLOW_TRACKING_URI elsewhere"
        )


def artifact_location(uri: str, experiment: str) -> str | None:
    """For a SQLite store, `<db folder>/mlartifacts/<experiment>` as a file URI; else None.

    MLflow's own default for SQLite is `./mlruns` in whatever folder the process runs in, which
    scatters artifacts; pinning them next to the database keeps the store self-contained.
    """
    database = sqlite_path(uri)
    if database is None:
        return None
    folder = sanitize_key(experiment).replace("/", "_").replace(" ", "_")
    return (database.parent / "mlartifacts" / folder).as_uri()


def ui_command(uri: str) -> str:
    """How to browse the runs: the server address for http(s) URIs, else an `mlflow ui` command."""
    if is_http(uri):
        return uri
    return f"mlflow ui --backend-store-uri {shlex.quote(uri)} --host 127.0.0.1"
