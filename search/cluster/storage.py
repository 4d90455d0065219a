"""Where a search's files go, and whether every node of the cluster can reach them.

output_dir is a path (local, or mounted at the same place on every node: NFS, EFS, Lustre) or the URI
of a pyarrow filesystem (s3://, gs://, abfs://, hdfs://, file://). A path is used as is. A URI is
split: Ray writes trial checkpoints and its experiment state straight to it (each worker uploads its
own checkpoints), while the driver writes its files (record, config, Optuna journal, report) to a
local staging folder that `push` copies to the URI and `pull` brings back to resume.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from search.cluster.info import ClusterInfo
from trainables.errors import UserInputError

EXPERIMENT_DIR = "tune"  # Ray's experiment folder inside output_dir: checkpoints, experiment state
STAGING_ROOT = Path(tempfile.gettempdir()) / "loss-search"  # staging folders of URI output_dirs


def is_uri(output_dir: str) -> bool:
    """True for `scheme://...` (a pyarrow filesystem URI), False for a plain path."""
    return "://" in output_dir


def _reachable_everywhere(output_dir: str) -> bool:
    """A remote filesystem URI; file:// is a path on this node like any other."""
    return is_uri(output_dir) and not output_dir.startswith("file://")


def check_storage(output_dir: str, info: ClusterInfo, shared: bool = False) -> None:
    """Refuse, before any trial runs, a node-local output_dir on a cluster with other nodes or an
    autoscaler that may add some: trials there could not save checkpoints the others can read.

    `shared`: the user declared output_dir a path mounted at the same place on every node.
    """
    if shared or not info.multi_node or _reachable_everywhere(output_dir):
        return
    why = (
        f"this cluster has {info.nodes} nodes"
        if info.nodes > 1
        else "this cluster autoscales (its autoscaler adds worker nodes)"
    )
    raise UserInputError(
        f"output_dir={output_dir}: {why}, and trials on other nodes cannot save checkpoints to a "
        "path on this node; set output_dir to shared storage: a URI such as s3://bucket/searches/"
        "elf or gs://bucket/searches/elf, or a path mounted at the same place on every node "
        "declared with cluster.shared_storage=true"
    )


@dataclass(frozen=True)
class Storage:
    """The folders of one search: where the driver writes and where Ray writes."""

    local: Path  # the driver's folder: output_dir itself, or the staging copy of a URI
    ray_path: str  # RunConfig.storage_path: the URI, or the local folder's absolute path
    remote: str | None = None  # the output_dir URI that `push` copies `local` to


def staging_dir(uri: str) -> Path:
    """The local staging folder of a URI: s3://bucket/a/b → <tmp>/loss-search/s3/bucket/a/b."""
    scheme, _, rest = uri.partition("://")
    return STAGING_ROOT / scheme / rest.strip("/")


def plan_storage(output_dir: str) -> Storage:
    """The Storage of `output_dir` (a path or a URI); creates nothing."""
    if not is_uri(output_dir):
        return Storage(Path(output_dir), str(Path(output_dir).resolve()))
    uri = output_dir.rstrip("/")
    return Storage(staging_dir(uri), uri, uri)


def _copy_tree(src: str, dst: str, skip: tuple[str, ...] = ()) -> int:
    """Copy every file under `src` to `dst` (paths or URIs), except top-level entries in `skip`."""
    from pyarrow import fs as pafs

    src_fs, src_path = pafs.FileSystem.from_uri(_as_uri(src))
    dst_fs, dst_path = pafs.FileSystem.from_uri(_as_uri(dst))
    if src_fs.get_file_info(src_path).type == pafs.FileType.NotFound:
        return 0
    copied = 0
    for entry in src_fs.get_file_info(pafs.FileSelector(src_path, recursive=True)):
        rel = PurePosixPath(entry.path).relative_to(PurePosixPath(src_path))
        if entry.type != pafs.FileType.File or rel.parts[0] in skip:
            continue
        target = str(PurePosixPath(dst_path) / rel)
        dst_fs.create_dir(str(PurePosixPath(target).parent), recursive=True)
        pafs.copy_files(entry.path, target, src_fs, dst_fs)
        copied += 1
    return copied


def _as_uri(location: str) -> str:
    return location if is_uri(location) else Path(location).resolve().as_uri()


def push(storage: Storage) -> int:
    """Copy the driver's files to the output_dir URI (no-op for a path); returns the file count."""
    if storage.remote is None:
        return 0
    return _copy_tree(str(storage.local), storage.remote, skip=(EXPERIMENT_DIR,))


def pull(storage: Storage) -> int:
    """Bring a URI output_dir's driver files into the staging folder (no-op for a path).

    Ray's experiment folder stays remote: Ray reads it there, and it holds every checkpoint.
    """
    if storage.remote is None:
        return 0
    storage.local.mkdir(parents=True, exist_ok=True)
    return _copy_tree(storage.remote, str(storage.local), skip=(EXPERIMENT_DIR,))
