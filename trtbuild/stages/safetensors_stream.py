"""Read and write safetensors files a piece at a time, with numpy only (no torch).

The streaming converter (:mod:`trtbuild.stages.streaming_checkpoint`) never holds a whole model:

* :func:`index_tensors` lists where every tensor of a set of HF ``*.safetensors`` files lives
  (dtype, shape, absolute byte offset), from the headers alone; :func:`read_rows` reads a range of
  rows of one tensor with ``os.pread`` into a fresh buffer (no mmap, so file pages never count
  towards the process's RSS).
* :func:`to_dtype` converts between F16, BF16 and F32 bit for bit as ``torch.Tensor.to`` does on
  finite and infinite values: F32→F16 is numpy's round-to-nearest-even cast, F32→BF16 rounds the
  top 16 bits to nearest even (c10::BFloat16's rule), widening is exact. BF16 is handled as raw
  uint16. NaNs become one canonical quiet NaN (torch's own NaN bits vary with the CPU's SIMD path).
* :class:`SafetensorsWriter` writes the header first (tensors ordered as the ``safetensors``
  library orders them: dtype descending, then name; header padded with spaces to 8 bytes) and then
  accepts each tensor's bytes in any order and in pieces, so memory stays at one piece. ``close``
  checks that every byte of every tensor was written exactly once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from trtbuild.errors import CheckpointError
from trtbuild.stages.fetch import read_safetensors_header

if TYPE_CHECKING:
    import numpy as np

ITEMSIZE = {"F16": 2, "BF16": 2, "F32": 4}
_NUMPY = {"F16": "<f2", "BF16": "<u2", "F32": "<f4"}
# The safetensors library sorts tensors by dtype, larger enum value first; this is the relative order
# of the dtypes written here (F32 > BF16 > F16 in safetensors' Dtype enum).
_ORDER = {"F32": 2, "BF16": 1, "F16": 0}
_BF16_NAN = 0x7FC0


class SourceTensor(NamedTuple):
    """One tensor of an input safetensors file."""

    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int
    """Absolute file offset of the first data byte."""

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def row_elems(self) -> int:
        n = 1
        for d in self.shape[1:]:
            n *= d
        return n


def index_tensors(paths: Iterable[Path]) -> dict[str, SourceTensor]:
    """Every tensor of ``paths`` by name; a name in two files is an error naming both."""
    index: dict[str, SourceTensor] = {}
    for path in paths:
        header = read_safetensors_header(path)
        with open(path, "rb") as f:
            data_start = 8 + int.from_bytes(f.read(8), "little")
        for name, info in header.items():
            if name in index:
                raise CheckpointError(f"tensor {name} is in both {index[name].path} and {path}")
            begin = int(info["data_offsets"][0])
            index[name] = SourceTensor(name, path, str(info["dtype"]), tuple(int(d) for d in info["shape"]),
                                       data_start + begin)
    return index


def read_rows(src: SourceTensor, first: int, last: int) -> np.ndarray[Any, Any]:
    """Rows ``[first, last)`` of ``src`` as a 2-D array of its raw dtype (BF16 as uint16)."""
    import numpy as np

    row_bytes = src.row_elems * ITEMSIZE[src.dtype]
    want = (last - first) * row_bytes
    buf = bytearray(want)
    view = memoryview(buf)
    fd = os.open(src.path, os.O_RDONLY)
    try:
        done = 0
        while done < want:
            n = os.preadv(fd, [view[done:]], src.offset + first * row_bytes + done)
            if n <= 0:
                raise CheckpointError(f"{src.path}: unexpected end of file reading tensor {src.name}")
            done += n
    finally:
        os.close(fd)
    return np.frombuffer(buf, dtype=_NUMPY[src.dtype]).reshape(last - first, src.row_elems)


def _to_float32(a: np.ndarray[Any, Any], dtype: str) -> np.ndarray[Any, Any]:
    import numpy as np

    if dtype == "F32":
        return a
    if dtype == "F16":
        return a.astype(np.float32)
    wide = a.astype(np.uint32)
    wide <<= 16
    return wide.view(np.float32)


def _from_float32(x: np.ndarray[Any, Any], dtype: str) -> np.ndarray[Any, Any]:
    import numpy as np

    if dtype == "F32":
        return x
    if dtype == "F16":
        with np.errstate(over="ignore"):  # overflow to ±inf is the intended IEEE result, as in torch
            return x.astype(np.float16)
    bits = x.view(np.uint32)
    rounded = bits >> 16  # round to nearest even: add 0x7FFF + the lowest kept bit, then truncate
    rounded &= 1
    rounded += 0x7FFF
    rounded += bits
    rounded >>= 16
    out = rounded.astype(np.uint16)
    del rounded
    nan = np.isnan(x)
    if nan.any():
        out[nan] = _BF16_NAN
    return out


def to_dtype(a: np.ndarray[Any, Any], src: str, dst: str) -> np.ndarray[Any, Any]:
    """Convert raw values of dtype ``src`` to ``dst`` (safetensors dtype names); same dtype: unchanged."""
    if src == dst:
        return a
    return _from_float32(_to_float32(a, src), dst)


# ------------------------------------------------------------------------------------------- writer
class OutputTensor(NamedTuple):
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = ITEMSIZE[self.dtype]
        for d in self.shape:
            n *= d
        return n


def safetensors_layout(tensors: Iterable[OutputTensor]) -> tuple[bytes, dict[str, int]]:
    """(the 8-byte length + padded JSON header, data offset of each tensor) as ``safetensors`` writes them."""
    ordered = sorted(tensors, key=lambda t: (-_ORDER[t.dtype], t.name))
    header: dict[str, Any] = {}
    offsets: dict[str, int] = {}
    pos = 0
    for t in ordered:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [pos, pos + t.nbytes]}
        offsets[t.name] = pos
        pos += t.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, offsets


class SafetensorsWriter:
    """A safetensors file whose tensors are filled piece by piece, in any order."""

    def __init__(self, path: Path, tensors: list[OutputTensor]) -> None:
        self.path = Path(path)
        self.tensors = {t.name: t for t in tensors}
        head, self._offsets = safetensors_layout(tensors)
        self._data_start = len(head)
        self._written = dict.fromkeys(self.tensors, 0)
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self._file.write(head)

    def write(self, name: str, byte_offset: int, data: bytes | memoryview) -> None:
        """Write ``data`` at ``byte_offset`` inside tensor ``name``."""
        size = len(data) if isinstance(data, bytes) else data.nbytes
        if byte_offset < 0 or byte_offset + size > self.tensors[name].nbytes:
            raise CheckpointError(f"{self.path.name}: write of {size} bytes at {byte_offset} overflows {name}")
        self._file.seek(self._data_start + self._offsets[name] + byte_offset)
        self._file.write(data)
        self._written[name] += size

    def write_zeros(self, name: str, byte_offset: int, size: int, block: int = 1 << 22) -> None:
        zeros = bytes(min(size, block))
        done = 0
        while done < size:
            n = min(block, size - done)
            self.write(name, byte_offset + done, zeros[:n])
            done += n

    def close(self) -> None:
        """Close the file; raise if a tensor was not written exactly once, byte for byte."""
        self._file.close()
        wrong = [f"{n} ({w} of {self.tensors[n].nbytes} bytes)" for n, w in self._written.items()
                 if w != self.tensors[n].nbytes]
        if wrong:
            raise CheckpointError(f"{self.path.name}: incompletely written tensors: {', '.join(sorted(wrong))}")

    def abort(self) -> None:
        self._file.close()
