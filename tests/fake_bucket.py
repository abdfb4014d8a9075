"""A gs:// bucket for tests: an Apache Beam filesystem whose objects live in a local folder, with an object
store's rules (no directories, an object appears only when its upload is closed, rename and delete object
by object, a prefix lists every object under it). Importing this module registers it for the gs scheme
(apache-beam[gcp], whose GCS filesystem would claim gs://, is not installed here); `FakeBucket.root`
says where the objects are kept. A path that code opened with the os module instead of Beam's filesystems
would land in a local folder named "gs:" and fail the tests that look for one.
"""

from __future__ import annotations

import io
import os
import shutil

from apache_beam.io.filesystem import BeamIOError, CompressedFile, CompressionTypes, FileMetadata, FileSystem

SCHEME = "gs://"
_PARTIAL = ".uploading"


class _Upload(io.FileIO):
    """An object being written: it takes its name only when closed."""

    def __init__(self, local: str):
        self.final = local
        super().__init__(local + _PARTIAL, "wb")

    def close(self):
        if not self.closed:
            super().close()
            os.replace(self.final + _PARTIAL, self.final)


class FakeBucket(FileSystem):
    root: str | None = None

    @classmethod
    def scheme(cls):
        return "gs"

    def _local(self, path: str) -> str:
        if FakeBucket.root is None or not path.startswith(SCHEME):
            raise BeamIOError(f"no fake bucket for {path}")
        return os.path.join(FakeBucket.root, path[len(SCHEME):])

    def _url(self, local: str) -> str:
        return SCHEME + os.path.relpath(local, FakeBucket.root)

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *(p.strip("/") for p in paths)])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        pass

    def has_dirs(self):
        return False

    def _list(self, dir_or_prefix):
        local = self._local(dir_or_prefix)
        top = local if os.path.isdir(local) else os.path.dirname(local)
        for folder, _, names in os.walk(top):
            for name in names:
                path = os.path.join(folder, name)
                url = self._url(path)
                if not name.endswith(_PARTIAL) and url.startswith(dir_or_prefix):
                    yield FileMetadata(url, os.path.getsize(path), os.path.getmtime(path))

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        local = self._local(path)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        return self._wrap(path, _Upload(local), compression_type)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        return self._wrap(path, io.FileIO(self._local(path), "rb"), compression_type)

    @staticmethod
    def _wrap(path, raw, compression_type):
        compression = FileSystem._get_compression_type(path, compression_type)
        return raw if compression == CompressionTypes.UNCOMPRESSED else CompressedFile(raw, compression)

    def _pairwise(self, what, sources, destinations, move):
        errors = {}
        for source, destination in zip(sources, destinations):
            try:
                target = self._local(destination)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                move(self._local(source), target)
            except Exception as err:  # noqa: BLE001 - reported per pair, as Beam's filesystems do
                errors[(source, destination)] = err
        if errors:
            raise BeamIOError(f"{what} operation failed", errors)

    def copy(self, source_file_names, destination_file_names):
        self._pairwise("Copy", source_file_names, destination_file_names, shutil.copyfile)

    def rename(self, source_file_names, destination_file_names):
        self._pairwise("Rename", source_file_names, destination_file_names, os.replace)

    def exists(self, path):
        return os.path.isfile(self._local(path))

    def size(self, path):
        return self.metadata(path).size_in_bytes

    def last_updated(self, path):
        return self.metadata(path).last_updated_in_seconds

    def checksum(self, path):
        return str(self.size(path))

    def metadata(self, path):
        local = self._local(path)
        if not os.path.isfile(local):
            raise BeamIOError(f"Path does not exist: {path}")
        return FileMetadata(path, os.path.getsize(local), os.path.getmtime(local))

    def delete(self, paths):
        for path in paths:
            prefix = path if path.endswith("/") else None
            found = [m.path for m in self._list(prefix)] if prefix else \
                [m.path for m in self.match([path])[0].metadata_list]
            for url in found:
                os.remove(self._local(url))

    def report_lineage(self, path, lineage):
        pass
