"""Copy a store entry out of the store, verifying every byte against its manifest as it is copied.

What ``trtbuild compile`` writes to ``OUT/<gpu>/`` comes from here. The copy is driven by the manifest, not by
the directory: a file, directory or symlink the manifest does not list is never exported. Each file is
copied into a new inode (a reflink where the filesystem can clone, else an in-kernel copy; never a hard
link, so editing ``OUT/.../config.pbtxt`` cannot change the cache), then its sha256 is computed over the
bytes that landed in the destination: what is exported is exactly what the manifest recorded, with no
window between a check and the copy (a file changed in the store meanwhile fails the check). Modes are normalised (0644, 0755 for files the
manifest marks executable; the umask applies); symlinks must stay inside the entry.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from pathlib import Path

from trtbuild.cache.entry import DATA_DIR, EntryManifest, Problem

FICLONE = 0x40049409
"""Linux ``ioctl`` that makes ``dst`` share ``src``'s data blocks copy-on-write (btrfs, XFS, bcachefs)."""
_CHUNK = 8 * 1024 * 1024


def _reflink(src_fd: int, dst_fd: int) -> bool:
    try:
        import fcntl

        fcntl.ioctl(dst_fd, FICLONE, src_fd)
        return True
    except (ImportError, OSError):
        return False


def _hash_fd(fd: int) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    os.lseek(fd, 0, os.SEEK_SET)
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while True:
        got = os.readv(fd, [buf])
        if not got:
            return h.hexdigest(), n
        h.update(view[:got])
        n += got


def _copy_in_kernel(sfd: int, dfd: int, size: int) -> None:
    """Copy ``size`` bytes between descriptors without passing them through Python (copy_file_range, else
    sendfile, else read/write)."""
    done = 0
    for call in ("copy_file_range", "sendfile"):
        fn = getattr(os, call, None)
        if fn is None:
            continue
        try:
            while done < size:
                n = fn(sfd, dfd, size - done) if call == "copy_file_range" else fn(dfd, sfd, done, size - done)
                if n == 0:
                    break
                done += n
            if done >= size:
                return
        except OSError:
            pass  # not supported between these filesystems: try the next way from where this one stopped
        os.lseek(sfd, done, os.SEEK_SET)
        os.lseek(dfd, done, os.SEEK_SET)
    while chunk := os.read(sfd, _CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dfd, view):]


def copy_verified(src: Path, dst: Path, *, executable: bool = False, reflink: bool = True) -> tuple[str, int]:
    """Copy ``src`` to the new file ``dst`` (never following symlinks at either end): a reflink where the
    filesystem clones, else an in-kernel copy; then hash what ``dst`` holds. Returns its sha256 and size."""
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(sfd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{src}: not a regular file")
        dfd = os.open(dst, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                      0o755 if executable else 0o644)
        try:
            if not (reflink and _reflink(sfd, dfd)):
                _copy_in_kernel(sfd, dfd, st.st_size)
            return _hash_fd(dfd)  # the bytes that landed, read back: what a reader of dst gets
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)


def export_tree(root: Path, manifest: EntryManifest, dest: Path, *, reflink: bool = True) -> list[Problem]:
    """Copy the entry at ``root`` (``store/<stage>/<key>``) into the new directory ``dest``, verified.

    Returns the files whose exported bytes do not match the manifest (``dest`` then holds them: the caller
    discards it); [] when everything matches."""
    stage, key, data = manifest.stage, manifest.key, Path(root) / DATA_DIR
    dest = Path(dest)
    dest.mkdir()
    for rel in sorted(manifest.dirs):
        (dest / rel).mkdir(parents=True, exist_ok=True)
    problems: list[Problem] = []
    for rel, rec in sorted(manifest.files.items()):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        try:
            digest, size = copy_verified(data / rel, dest / rel, executable=rec.executable, reflink=reflink)
        except OSError as exc:
            problems.append(Problem(stage, key, rel, "missing", str(exc.strerror or exc)))
            continue
        if size != rec.size:
            problems.append(Problem(stage, key, rel, "size", f"expected {rec.size}, exported {size}"))
        elif digest != rec.sha256:
            problems.append(Problem(stage, key, rel, "digest",
                                    f"expected {rec.sha256[:16]}…, exported bytes hash to {digest[:16]}…"))
    for rel, target in sorted(manifest.links.items()):
        logical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
        if target.startswith("/") or logical == ".." or logical.startswith("../"):
            problems.append(Problem(stage, key, rel, "link", f"-> {target} points outside the entry"))
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, dest / rel)
    return problems
