"""Byte-stable file writers: gzip with a fixed header, text with fixed newlines, JSON lines."""

from __future__ import annotations

import gzip
import json
import os


def write_gz(path: str, text: str) -> None:
    """Gzip with a fixed header (no name, mtime 0), so the bytes depend on the text only."""
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                 compresslevel=6) as gz:
        gz.write(text.encode("utf-8"))


def write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
