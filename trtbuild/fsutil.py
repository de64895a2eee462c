"""Filesystem helpers: atomic directories and files, streamed hashing, bounded reads of user files."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 4 * 1024 * 1024


def sha256_file(path: Path, chunk_size: int = _CHUNK) -> str:
    """Hex sha256 of a file, streamed in large chunks (no full read into memory)."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(chunk_size)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The content of a regular file of at most ``max_bytes``, read without ever blocking or running away.

    The file is opened non-blocking (opening a FIFO does not wait for a writer), checked to be a regular
    file on the open descriptor (a FIFO, ``/dev/zero``, a directory are refused, race-free) and no larger
    than ``max_bytes``, and at most ``max_bytes`` are read even if it grows meanwhile. Raises OSError
    whose ``strerror`` says why (``not a regular file (a FIFO)``, ``larger than ... bytes``).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_kind(st.st_mode)})", str(path))
        if st.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes ({st.st_size})", str(path))
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, min(_CHUNK, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", str(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def staging_path(final: Path) -> Path:
    """A unique sibling path for building ``final`` before it is renamed into place."""
    return final.parent / f".{final.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces ``final`` atomically.

    On any exception the staging directory is removed and ``final`` is left as it was, so a
    crash never leaves a half-written directory under the final name.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = staging_path(final)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    publish_dir(stage, final)


def publish_dir(stage: Path, final: Path) -> None:
    """Move a finished staging directory to ``final``, replacing an older one atomically."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(final, old)
    os.replace(stage, final)
    _fsync_dir(final.parent)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file via a temporary sibling and rename, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    raw = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
