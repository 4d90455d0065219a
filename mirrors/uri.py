"""Where runs go: resolve the tracking URI, check it before any trial, and say how to browse it."""

from __future__ import annotations

import shlex
import urllib.error
import urllib.request
from pathlib import Path

from mirrors.names import sanitize_key
from trainables.errors import UserInputError

DEFAULT_DB_NAME = "mlflow.db"
# A server that has not answered in 5 s is down or misconfigured; waiting longer delays the error.
REACHABLE_TIMEOUT_S = 5.0
_SQLITE = "sqlite:///"


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


def check_reachable(uri: str, timeout_s: float = REACHABLE_TIMEOUT_S) -> None:
    """Raise UserInputError naming `uri` when an http(s) server does not answer within `timeout_s`
    or a SQLite database's folder does not exist; other URIs are left to MLflow.

    Any HTTP answer (even 401/403/404) counts as reachable: the server is there.
    """
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
