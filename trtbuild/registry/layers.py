"""Directory layers as deterministic tars, and their safe extraction.

Writing: entries sorted by path, mtime 0, uid/gid 0, no user/group names, modes normalised (dirs 0755,
files 0644 or 0755 if executable), PAX format, no compression: the same tree always gives the same bytes,
so re-publishing it gives the same digest. A symlink is kept if its target is relative and stays inside
the artifact (checked lexically); anything else (absolute or escaping symlinks, devices, fifos, sockets) is
refused. Hard links are stored as regular files.

Extracting: every member must be a regular file, directory or symlink under the layer's title, with a
relative path free of ``..``; files are created with O_EXCL|O_NOFOLLOW below directories whose real path
is inside the target; symlinks are created last and every one must resolve inside the target. Any
violation raises ``PublishError``; the caller extracts into a staging directory it then throws away.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tarfile
from pathlib import Path

from trtbuild.errors import PublishError

TAR_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


def safe_relpath(name: str, *, what: str = "path") -> str:
    """Validate a relative POSIX path (no absolute, ``..``, empty or odd components); normalised."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/"):
        raise PublishError(f"refusing {what} {name!r}: absolute, empty or not a plain relative path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise PublishError(f"refusing {what} {name!r}: it leaves the target directory")
    return "/".join(parts)


def _within(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _tarinfo(name: str, kind: bytes, mode: int, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.size = size
    ti.linkname = linkname
    ti.mtime = 0
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def _walk_sorted(root: Path) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        for name in dirnames + filenames:
            p = base / name
            out.append((p.relative_to(root).as_posix(), p))
    out.sort(key=lambda t: t[0])
    return out


def write_tar(src_dir: Path, dest: Path, *, arcname: str, artifact_rel: str | None = None) -> None:
    """Write ``src_dir`` as a deterministic tar whose entries live under ``arcname/``.

    ``artifact_rel`` is ``arcname``'s place in the artifact (default ``arcname``): symlinks may point
    anywhere inside the artifact, judged from there.
    """
    src_dir = Path(src_dir)
    prefix = safe_relpath(arcname, what="layer name")
    place = artifact_rel or prefix
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tarinfo(prefix, tarfile.DIRTYPE, 0o755))
        for rel, p in _walk_sorted(src_dir):
            name = f"{prefix}/{rel}"
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(p)
                logical = posixpath.normpath(posixpath.join(posixpath.dirname(f"{place}/{rel}"), target))
                if target.startswith("/") or logical == ".." or logical.startswith("../"):
                    raise PublishError(f"{p}: symlink to {target!r} points outside the artifact")
                tar.addfile(_tarinfo(name, tarfile.SYMTYPE, 0o777, linkname=target))
            elif stat.S_ISDIR(st.st_mode):
                tar.addfile(_tarinfo(name, tarfile.DIRTYPE, 0o755))
            elif stat.S_ISREG(st.st_mode):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                with open(p, "rb") as f:
                    tar.addfile(_tarinfo(name, tarfile.REGTYPE, mode, size=st.st_size), f)
            else:
                raise PublishError(f"{p}: not a regular file, directory or symlink; cannot publish it")


def _parent_inside(root: Path, rel: str) -> Path:
    """Create the parent directories of ``root/rel`` and check they really are inside ``root``."""
    dest = root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not _within(os.path.realpath(root), os.path.realpath(dest.parent)):
        raise PublishError(f"refusing {rel!r}: its directory resolves outside the target")
    return dest


def place_file(root: Path, rel: str, src: Path, *, mode: int = 0o644) -> Path:
    """Move ``src`` to ``root/rel`` (a new file, parents checked to be inside ``root``)."""
    rel = safe_relpath(rel)
    dest = _parent_inside(root, rel)
    if os.path.lexists(dest):
        raise PublishError(f"refusing {rel!r}: more than one layer writes it")
    os.replace(src, dest)
    os.chmod(dest, mode)
    return dest


def extract_tar(tar_path: Path, root: Path, *, prefix: str) -> list[str]:
    """Extract a layer tar into ``root``; every member must be under ``prefix``. Returns member paths."""
    prefix = safe_relpath(prefix, what="layer name")
    root = Path(root)
    real_root = os.path.realpath(root)
    seen: set[str] = set()
    links: list[tuple[str, str]] = []
    try:
        tar = tarfile.open(tar_path, "r:")  # noqa: SIM115 -- closed by the `with` below
    except tarfile.TarError as exc:
        raise PublishError(f"layer {prefix!r} is not a valid tar: {exc}") from None
    with tar:
        for m in tar:
            rel = safe_relpath(m.name, what=f"tar member in layer {prefix!r}")
            if rel != prefix and not rel.startswith(prefix + "/"):
                raise PublishError(f"refusing tar member {m.name!r}: outside its layer {prefix!r}")
            if rel in seen and not m.isdir():
                raise PublishError(f"refusing tar member {m.name!r}: it appears twice")
            seen.add(rel)
            if m.isdir():
                d = _parent_inside(root, rel)
                if os.path.lexists(d) and (os.path.islink(d) or not d.is_dir()):
                    raise PublishError(f"refusing tar member {m.name!r}: not a directory already")
                d.mkdir(exist_ok=True)
            elif m.isreg():
                dest = _parent_inside(root, rel)
                src = tar.extractfile(m)
                assert src is not None
                mode = 0o755 if m.mode & 0o111 else 0o644
                try:
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
                except FileExistsError:
                    raise PublishError(f"refusing tar member {m.name!r}: the path exists already") from None
                with os.fdopen(fd, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            elif m.issym():
                if m.linkname.startswith("/") or not m.linkname or "\x00" in m.linkname:
                    raise PublishError(f"refusing symlink {m.name!r} -> {m.linkname!r}: absolute target")
                links.append((rel, m.linkname))
            else:
                raise PublishError(f"refusing tar member {m.name!r}: hard links, devices and fifos "
                                   "are not allowed in a trtbuild artifact")
    for rel, target in links:
        dest = _parent_inside(root, rel)
        if os.path.lexists(dest):
            raise PublishError(f"refusing symlink {rel!r}: the path exists already")
        os.symlink(target, dest)
    # All links exist now: each must resolve inside the target, following every hop.
    for rel, target in links:
        if not _within(real_root, os.path.realpath(root / rel)):
            raise PublishError(f"refusing symlink {rel!r} -> {target!r}: it points outside the target")
    return sorted(seen)
