"""Reading a repository archive (GitHub's tarball: a gzip'd tar whose members sit under one
`{owner}-{repo}-{sha}/` folder) as a stream: one member at a time, in fixed-size reads.

Only the wanted files' contents are ever held (each at most the per-file limit, decided from the tree
before the download); skipped members are read past in `tarfile`'s stream blocks, and nothing seeks,
so the archive is never whole in memory, whatever its size (`tests/unit/test_tarball_stream.py`
measures it).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import BinaryIO


def read_tar_stream(fileobj: BinaryIO, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """(path, content) of each regular file of the archive whose path (the first folder dropped) is in
    `wanted`, in archive order. Raises `tarfile.TarError`, `OSError` or `EOFError` on a broken stream."""
    with tarfile.open(fileobj=fileobj, mode="r|gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            _, _, path = member.name.partition("/")  # drop the `{owner}-{repo}-{sha}/` folder
            if path not in wanted:
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                yield path, handle.read()
