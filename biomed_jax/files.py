"""Paths on a local disk or in an object store: the few file operations data preparation needs.

A path with a scheme (`gs://bucket/raw`, `s3://...`, `hdfs://...`, `azfs://...`) goes through Apache
Beam's filesystems (`apache_beam.io.filesystems.FileSystems`: what the Beam pipeline's own reads and writes
use, so the driver and every worker see the same files; gs:// needs `apache-beam[gcp]`, s3://
`apache-beam[aws]`); a plain path goes through the os module, as before. Raw files (`manual_dir`) and the
work directory (the clean corpus, the tokenizer, reports) can therefore live in a bucket.

Object stores have no directories and no atomic rename, so "nothing half-written looks finished" rests on
a marker written last (the clean stage's report), never on a folder's rename: `move_tree` moves every
other file first and the marker last. Beam is imported only for a path with a scheme.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import io
import os
import shutil
import uuid
from typing import BinaryIO, Iterator, TextIO


def is_remote(path: str) -> bool:
    """Whether `path` names an object store (it has a scheme), not a local file."""
    return "://" in str(path)


def _beam():
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems, CompressionTypes.UNCOMPRESSED


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def dirname(path: str) -> str:
    """The folder holding `path` (absolute where local)."""
    if is_remote(path):
        return path.rstrip("/").rsplit("/", 1)[0]
    return os.path.dirname(absolute(path))


def absolute(path: str) -> str:
    """`path` made absolute where local; an object store's path as it is."""
    return path if is_remote(path) else os.path.abspath(path)


def match(pattern: str) -> list[str]:
    """The files `pattern` matches (a glob; `**` crosses folders), sorted; none is an empty list."""
    if is_remote(pattern):
        file_systems, _ = _beam()
        return sorted(m.path for m in file_systems.match([pattern])[0].metadata_list)
    return sorted(f for f in _glob.glob(pattern, recursive=True) if os.path.isfile(f))


def exists(path: str) -> bool:
    """Whether the file `path` exists."""
    if is_remote(path):
        file_systems, _ = _beam()
        return file_systems.exists(path)
    return os.path.isfile(path)


def open_read(path: str) -> BinaryIO:
    """The file's bytes as stored (no decompression: readers decide that from the name)."""
    if is_remote(path):
        file_systems, raw = _beam()
        return file_systems.open(path, compression_type=raw)
    return open(path, "rb")


def open_write(path: str) -> BinaryIO:
    """A new file at `path` (its folder made where folders exist); in an object store the object appears
    when the stream is closed."""
    if is_remote(path):
        file_systems, raw = _beam()
        return file_systems.create(path, compression_type=raw)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "wb")


def open_text(path: str, mode: str = "r") -> TextIO:
    """`open_read` / `open_write` ("w") as UTF-8 text."""
    if mode not in ("r", "w"):
        raise ValueError(f"mode must be 'r' or 'w', got {mode!r}")
    if not is_remote(path):
        if mode == "w":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return open(path, mode, encoding="utf-8")
    stream = open_read(path) if mode == "r" else open_write(path)
    return io.TextIOWrapper(stream, encoding="utf-8")


def read_text(path: str) -> str:
    with open_text(path) as f:
        return f.read()


@contextlib.contextmanager
def replacing(path: str, mode: str = "w") -> Iterator[TextIO | BinaryIO]:
    """A stream ("w": UTF-8 text, "wb": bytes) that writes `path` whole: into a temporary name beside it,
    renamed onto `path` when the block ends without an error (removed when it raises). Readers see the
    old file or the new one, never part of one; two writers of the same content (a bundle a runner
    retries) leave one whole copy."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with (open_text(tmp, "w") if mode == "w" else open_write(tmp)) as stream:
            yield stream
    except BaseException:
        remove(tmp)
        raise
    rename(tmp, path)


def write_text(path: str, text: str) -> str:
    """Writes `text` so that readers see the old file or the new one, never part of one (`replacing`)."""
    with replacing(path) as f:
        f.write(text)
    return path


def copy(source: str, destination: str) -> None:
    """Copies one file, across filesystems too (a tokenizer from a bucket into a local dataset folder)."""
    with open_read(source) as src, open_write(destination) as dst:
        shutil.copyfileobj(src, dst)


def remove(path: str) -> None:
    """Deletes the file `path` (nothing if it is absent)."""
    if is_remote(path):
        if exists(path):
            file_systems, _ = _beam()
            file_systems.delete([path])
    elif os.path.exists(path):
        os.remove(path)


def rename(source: str, destination: str) -> None:
    """Moves one file onto `destination` (replacing it)."""
    if not is_remote(source):
        os.replace(source, destination)
        return
    remove(destination)
    file_systems, _ = _beam()
    file_systems.rename([source], [destination])


def rmtree(path: str) -> None:
    """Deletes the folder `path` and everything under it (nothing if it is absent)."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    found = match(join(path, "**"))
    if found:
        file_systems, _ = _beam()
        file_systems.delete(found)


def move_tree(source: str, destination: str, last: str) -> None:
    """Replaces folder `destination` by folder `source`, the file named `last` (a marker that says the
    folder is finished) moved after every other one. Locally one rename; in an object store a rename per
    object, so an interrupted move leaves no marker and the stage reruns."""
    rmtree(destination)
    if not is_remote(source):
        os.replace(source, destination)
        return
    prefix = join(source, "")
    for path in sorted(match(join(source, "**")), key=lambda p: p == join(source, last)):
        rename(path, join(destination, path[len(prefix):]))
