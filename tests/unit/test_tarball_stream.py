"""The import's tar reader streams: reading a 24 MB archive for two of its files holds about those
files, never the archive (`app/providers/github/tarball.py`)."""

from __future__ import annotations

import io
import os
import tarfile
import tracemalloc

import pytest

from app.providers.github.tarball import read_tar_stream

BIG_FILES = 24
BIG_FILE_BYTES = 1_000_000


@pytest.fixture(scope="module")
def archive_path(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tarball") / "repo.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        def add(name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> None:
            info = tarfile.TarInfo(f"octocat-tools-abc1234/{name}")
            info.size, info.type = len(data), kind
            tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("octocat-tools-abc1234")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for number in range(BIG_FILES):
            add(f"assets/big-{number}.bin", os.urandom(BIG_FILE_BYTES))  # random: gzip cannot shrink it
        add("src/app.py", b"print('hi')\n")
    return str(path)


def test_only_the_wanted_files_come_out(archive_path):
    with open(archive_path, "rb") as stream:
        found = dict(read_tar_stream(stream, {"src/app.py", "assets/big-3.bin", "missing.txt"}))
    assert set(found) == {"src/app.py", "assets/big-3.bin"}
    assert found["src/app.py"] == b"print('hi')\n"
    assert len(found["assets/big-3.bin"]) == BIG_FILE_BYTES


def test_the_archive_is_never_whole_in_memory(archive_path):
    archive_bytes = os.path.getsize(archive_path)
    assert archive_bytes > 20 * BIG_FILE_BYTES
    with open(archive_path, "rb") as stream:
        tracemalloc.start()
        try:
            for _path, content in read_tar_stream(stream, {"src/app.py", "assets/big-3.bin"}):
                del content
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # One wanted 1 MB file plus the stream's buffers; reading the archive whole would be 24 MB or more.
    assert peak < 4 * BIG_FILE_BYTES, f"peak {peak:,} bytes for a {archive_bytes:,}-byte archive"


def test_a_cut_archive_raises():
    data = open(__file__, "rb").read()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("x-y-z/a.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    cut = io.BytesIO(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises((tarfile.TarError, EOFError, OSError)):
        list(read_tar_stream(cut, {"a.py"}))
