"""A bounded GGUF header reader built on gguf-py's constants.

gguf-py's GGUFReader trusts the counts it reads (a 49-byte file declaring a
2**63-element array makes it allocate without end), so fitcheck parses the
header itself: every count is checked against the bytes left in the file
before anything is allocated or skipped. Only the header and tensor table are
read; tensor data is never touched. The file is read, not mapped: a prefix
that grows as the parse needs it, up to MAX_HEADER_BYTES, so a file that
shrinks while it is read is an error rather than a SIGBUS, an address-space
limit does not matter, and a hostile count is refused before it is walked.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf.constants import (
    GGML_QUANT_SIZES,
    GGUF_DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    GGMLQuantizationType,
    GGUFValueType,
)

from fitcheck.errors import GGUFError

SUPPORTED_VERSIONS = (2, 3)
MAX_DIMS = 4  # GGML_MAX_DIMS
INT64_MAX = 2**63 - 1
# Arrays longer than this are summarised (type and count) instead of kept:
# tokenizer vocabularies run to 262k entries and fitcheck needs only their size.
KEEP_ARRAY_MAX = 4096
MAX_ARRAY_DEPTH = 2
# What a real header can need, with room: the largest vocabularies (262k tokens, 280k merges) make
# headers of about 10 MB. Beyond these, a count is hostile, not a model.
MAX_HEADER_BYTES = 64 << 20
MAX_STRING_ITEMS = 1 << 22  # strings in one array: 16x the largest vocabulary
MAX_NESTED_ITEMS = 1 << 10  # arrays inside one array (llama.cpp writes none)
MAX_KV = 1 << 16  # metadata keys (models carry under a hundred)
MAX_TENSORS = 1 << 17  # tensors in one file (the largest MoE models carry a few thousand)
FIRST_READ = 1 << 20

_SCALAR_FORMATS = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
# Smallest encoding of one value of each type: a string is at least its 8-byte
# length, an array at least its 4-byte item type and 8-byte count.
_MIN_SIZE = {t: struct.calcsize(f) for t, f in _SCALAR_FORMATS.items()}
_MIN_SIZE[GGUFValueType.STRING] = 8
_MIN_SIZE[GGUFValueType.ARRAY] = 12
# key length + value type + smallest value
_MIN_KV_BYTES = 8 + 4 + 1
# name length + n_dims + one dim + type + offset
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8

SPLIT_NAME = re.compile(r"^(?P<stem>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


@dataclass(frozen=True)
class ArraySummary:
    """A long metadata array, kept as its item type and length only."""

    item_type: str
    count: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: str
    offset: int
    n_elements: int
    n_bytes: int
    split: int = 0


@dataclass(frozen=True)
class GGUFHeader:
    """What one GGUF file's header says."""

    path: str
    version: int
    byte_order: str
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    alignment: int
    data_offset: int
    file_size_bytes: int


@dataclass(frozen=True)
class GGUFModel:
    """A model as one or more GGUF files (split models are read as one)."""

    paths: tuple[str, ...]
    version: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    file_size_bytes: int
    splits: int = 1
    headers: tuple[GGUFHeader, ...] = field(default=(), repr=False, compare=False)

    @property
    def path(self) -> str:
        return self.paths[0]


def tensor_nbytes(ggml_type: GGMLQuantizationType, n_elements: int) -> int:
    block, type_size = GGML_QUANT_SIZES[ggml_type]
    return n_elements // block * type_size


class _Cursor:
    """Bounds-checked reads: nothing is read past `end` (the file's size).

    `buf` holds the file's first bytes; with a file object it grows on demand
    (doubling, at most MAX_HEADER_BYTES), so only what the parse walks is read.
    """

    def __init__(self, buf, path: str, order: str = "<", f=None, size: int | None = None):
        self.buf = buf
        self.path = path
        self.pos = 0
        self.f = f
        self.end = len(buf) if size is None else size
        self.set_order(order)

    def ensure(self, upto: int) -> None:
        """Make buf hold bytes [0, upto) of the file (upto <= end is checked by the caller)."""
        have = len(self.buf)
        if upto <= have or self.f is None:
            return
        if upto > MAX_HEADER_BYTES:
            raise self.fail(f"header is larger than {MAX_HEADER_BYTES >> 20} MiB (at offset {self.pos}): "
                            "not a model header fitcheck will read")
        want = min(self.end, MAX_HEADER_BYTES, max(upto, 2 * have))
        try:
            self.f.seek(have)
            chunk = self.f.read(want - have)
        except OSError as e:
            raise self.fail(f"cannot read: {e.strerror or e}") from None
        if len(chunk) < upto - have:
            raise self.fail("the file changed while it was read (shorter than its size)")
        self.buf = self.buf + chunk

    def set_order(self, order: str) -> None:
        self.order = order
        self._structs = {t: struct.Struct(order + f) for t, f in _SCALAR_FORMATS.items()}
        self._u64 = self._structs[GGUFValueType.UINT64]
        self._u32 = self._structs[GGUFValueType.UINT32]

    def fail(self, problem: str) -> GGUFError:
        return GGUFError(self.path, problem)

    def left(self) -> int:
        return self.end - self.pos

    def need(self, n: int, what: str) -> None:
        if n > self.end - self.pos:
            raise self.fail(
                f"truncated: {what} needs {n} bytes at offset {self.pos}, "
                f"only {self.end - self.pos} left"
            )
        self.ensure(self.pos + n)

    def scalar(self, vtype: GGUFValueType, what: str):
        s = self._structs[vtype]
        self.need(s.size, what)
        (v,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return v

    def u32(self, what: str) -> int:
        return self.scalar(GGUFValueType.UINT32, what)

    def u64(self, what: str) -> int:
        return self.scalar(GGUFValueType.UINT64, what)

    def raw_string(self, what: str) -> bytes:
        n = self.u64(f"length of {what}")
        if n > self.end - self.pos:
            raise self.fail(
                f"{what} declares {n} bytes but only {self.end - self.pos} are left"
            )
        self.ensure(self.pos + n)
        b = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return b

    def string(self, what: str) -> str:
        b = self.raw_string(what)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8") from None

    def skip_strings(self, count: int, what: str) -> None:
        """Walk a long string array without building it (the buffer grows as the walk needs)."""
        if count > MAX_STRING_ITEMS:
            raise self.fail(f"{what} declares {count} strings (more than {MAX_STRING_ITEMS}): not a vocabulary")
        unpack = self._u64.unpack_from
        pos, buf = self.pos, self.buf
        for i in range(count):
            if pos + 8 > len(buf):
                self.pos = pos
                self.need(8, f"length of {what}[{i}]")
                buf = self.buf
            n = unpack(buf, pos)[0]
            if n > self.end - pos - 8:
                raise self.fail(f"{what}[{i}] declares {n} bytes but only {self.end - pos - 8} are left")
            pos += 8 + n
        self.pos = pos

    def value_type(self, what: str) -> GGUFValueType:
        raw = self.u32(f"type of {what}")
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise self.fail(f"{what} has unknown value type {raw}") from None

    def value(self, vtype: GGUFValueType, what: str, depth: int = 0):
        if vtype == GGUFValueType.STRING:
            return self.string(what)
        if vtype != GGUFValueType.ARRAY:
            return self.scalar(vtype, what)
        if depth >= MAX_ARRAY_DEPTH:
            raise self.fail(f"{what} nests arrays deeper than {MAX_ARRAY_DEPTH}")
        item = self.value_type(f"items of {what}")
        count = self.u64(f"length of {what}")
        if count > self.left() // _MIN_SIZE[item]:
            raise self.fail(
                f"{what} declares {count} items of {item.name} but only "
                f"{self.left()} bytes are left"
            )
        if item == GGUFValueType.ARRAY and count > MAX_NESTED_ITEMS:
            raise self.fail(f"{what} declares {count} nested arrays (more than {MAX_NESTED_ITEMS})")
        if count > KEEP_ARRAY_MAX:
            if item == GGUFValueType.STRING:
                self.skip_strings(count, what)
            elif item == GGUFValueType.ARRAY:
                for i in range(count):
                    self.value(GGUFValueType.ARRAY, f"{what}[{i}]", depth + 1)
            else:
                self.pos += count * _MIN_SIZE[item]  # skipped, not read
            return ArraySummary(item.name, count)
        if item in _SCALAR_FORMATS:
            size = _MIN_SIZE[item]
            self.need(size * count, what)
            vals = struct.unpack_from(f"{self.order}{count}{_SCALAR_FORMATS[item]}", self.buf, self.pos)
            self.pos += size * count
            return list(vals)
        return [self.value(item, f"{what}[{i}]", depth + 1) for i in range(count)]


def _open(path: Path):
    """A regular file opened for reading, with its size."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise GGUFError(path, "no such file") from None
    except OSError as e:
        raise GGUFError(path, f"cannot access: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise GGUFError(path, "is a directory, not a GGUF file")
    if not stat.S_ISREG(st.st_mode):
        raise GGUFError(path, "is not a regular file")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise GGUFError(path, f"cannot open: {e.strerror or e}") from None
    if st.st_size == 0:
        f.close()
        raise GGUFError(path, "is empty, not a GGUF file")
    return f, st.st_size


def read_header(path: str | os.PathLike) -> GGUFHeader:
    """Read one GGUF file's metadata and tensor table, checking every count."""
    path = Path(path)
    f, size = _open(path)
    with f:
        try:
            first = f.read(min(size, FIRST_READ))
        except OSError as e:
            raise GGUFError(path, f"cannot read: {e.strerror or e}") from None
        return _parse(first, size, str(path), f)


def parse_header_bytes(data: bytes, name: str = "<bytes>") -> GGUFHeader:
    """Parse a GGUF header held in memory (the whole file, or a prefix of it is truncated)."""
    return _parse(data, len(data), name)


def _parse(buf, size: int, path: str, f=None) -> GGUFHeader:
    cur = _Cursor(buf, path, f=f, size=size)
    cur.need(4, "magic")
    magic = struct.unpack_from("<I", cur.buf, 0)[0]
    if magic != GGUF_MAGIC:
        raise cur.fail("not a GGUF file (it does not start with GGUF's magic)")
    cur.pos = 4
    version = cur.u32("version")
    if version not in SUPPORTED_VERSIONS:
        swapped = struct.unpack(">I", struct.pack("<I", version))[0]
        if swapped in SUPPORTED_VERSIONS:
            cur.set_order(">")
            version = swapped
        elif version == 1:
            raise cur.fail("GGUF version 1 is not supported (pre-2023 format; re-convert the model)")
        else:
            raise cur.fail(f"unsupported GGUF version {version} (supported: 2, 3)")

    n_tensors = cur.u64("tensor count")
    n_kv = cur.u64("metadata key/value count")
    if n_tensors > MAX_TENSORS:
        raise cur.fail(f"declares {n_tensors} tensors (more than {MAX_TENSORS}): not a model header")
    if n_kv > MAX_KV:
        raise cur.fail(f"declares {n_kv} metadata keys (more than {MAX_KV}): not a model header")
    if n_kv > cur.left() // _MIN_KV_BYTES:
        raise cur.fail(f"declares {n_kv} metadata keys but only {cur.left()} bytes are left")
    if n_tensors > cur.left() // _MIN_TENSOR_INFO_BYTES:
        raise cur.fail(f"declares {n_tensors} tensors but only {cur.left()} bytes are left")

    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        key = cur.string(f"metadata key #{i}")
        if key in metadata:
            raise cur.fail(f"duplicate metadata key {key!r}")
        vtype = cur.value_type(f"key {key!r}")
        metadata[key] = cur.value(vtype, f"value of {key!r}")
    if n_tensors > cur.left() // _MIN_TENSOR_INFO_BYTES:
        raise cur.fail(f"declares {n_tensors} tensors but only {cur.left()} bytes are left")

    alignment = metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if (
        not isinstance(alignment, int)
        or isinstance(alignment, bool)
        or alignment <= 0
        or alignment & (alignment - 1)
    ):
        raise cur.fail(f"general.alignment {alignment!r} is not a positive power of two")

    tensors = []
    names = set()
    for i in range(n_tensors):
        tensors.append(_tensor_info(cur, i, names))

    data_offset = -(-cur.pos // alignment) * alignment
    data_size = size - data_offset
    for t in tensors:
        if t.offset % alignment:
            raise cur.fail(f"tensor {t.name!r} offset {t.offset} is not aligned to {alignment}")
        if t.offset + t.n_bytes > data_size:
            raise cur.fail(
                f"truncated: tensor {t.name!r} data ends at byte "
                f"{data_offset + t.offset + t.n_bytes}, file has {size}"
            )
    return GGUFHeader(
        path=path,
        version=version,
        byte_order="little" if cur.order == "<" else "big",
        metadata=metadata,
        tensors=tuple(tensors),
        alignment=alignment,
        data_offset=data_offset,
        file_size_bytes=size,
    )


def _tensor_info(cur: _Cursor, i: int, names: set) -> TensorInfo:
    name = cur.string(f"name of tensor #{i}")
    if name in names:
        raise cur.fail(f"duplicate tensor name {name!r}")
    names.add(name)
    n_dims = cur.u32(f"n_dims of tensor {name!r}")
    if not 1 <= n_dims <= MAX_DIMS:
        raise cur.fail(f"tensor {name!r} has {n_dims} dimensions (allowed 1..{MAX_DIMS})")
    shape = tuple(cur.u64(f"dim {d} of tensor {name!r}") for d in range(n_dims))
    n_elements = 1
    for d in shape:
        if d > INT64_MAX:
            raise cur.fail(f"tensor {name!r} has a negative dimension")
        n_elements *= d
    if n_elements > INT64_MAX:
        raise cur.fail(f"tensor {name!r} shape {list(shape)} overflows 64 bits")
    raw_type = cur.u32(f"type of tensor {name!r}")
    try:
        gtype = GGMLQuantizationType(raw_type)
    except ValueError:
        raise cur.fail(f"tensor {name!r} has unknown ggml type {raw_type}") from None
    if gtype not in GGML_QUANT_SIZES:
        raise cur.fail(f"tensor {name!r} has ggml type {gtype.name} with no known size")
    block = GGML_QUANT_SIZES[gtype][0]
    if shape[0] % block:
        raise cur.fail(
            f"tensor {name!r} row length {shape[0]} is not a multiple of {gtype.name} block size {block}"
        )
    offset = cur.u64(f"offset of tensor {name!r}")
    return TensorInfo(
        name=name,
        shape=shape,
        ggml_type=gtype.name,
        offset=offset,
        n_elements=n_elements,
        n_bytes=tensor_nbytes(gtype, n_elements),
    )


def split_paths(path: Path) -> list[Path]:
    """All files of a split model given any one of them (or [path] if not split)."""
    m = SPLIT_NAME.match(path.name)
    if not m:
        return [path]
    count = int(m["count"])
    if count < 1 or int(m["no"]) < 1 or int(m["no"]) > count:
        raise GGUFError(path, f"split name says part {m['no']} of {m['count']}")
    return [path.with_name(f"{m['stem']}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def model_from_header(h: GGUFHeader) -> GGUFModel:
    return GGUFModel((h.path,), h.version, h.metadata, h.tensors, h.file_size_bytes, 1, (h,))


def read_model(path: str | os.PathLike) -> GGUFModel:
    """Read a model: one GGUF file, or all parts of a split model as one."""
    path = Path(path)
    parts = split_paths(path)
    if len(parts) == 1:
        h = read_header(path)
        declared = h.metadata.get("split.count", 1)
        if isinstance(declared, int) and declared > 1:
            raise GGUFError(
                path,
                f"is one part of a {declared}-part split model but its name lacks "
                "the -NNNNN-of-NNNNN.gguf pattern needed to find the others",
            )
        return model_from_header(h)
    missing = [p for p in parts if not p.exists()]
    if missing:
        raise GGUFError(path, f"split model is missing part {missing[0].name}")
    return merge_split(str(path), [read_header(p) for p in parts])


def merge_split(src: str, headers: list[GGUFHeader]) -> GGUFModel:
    """The parts of a split model (local or remote headers, in order) as one model, checked."""
    from dataclasses import replace

    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for i, h in enumerate(headers):
        no = h.metadata.get("split.no", i)
        if no != i:
            raise GGUFError(h.path, f"split.no is {no}, expected {i}")
        for t in h.tensors:
            if t.name in seen:
                raise GGUFError(h.path, f"tensor {t.name!r} appears in more than one split")
            seen.add(t.name)
            tensors.append(replace(t, split=i))
    first = headers[0]
    declared = first.metadata.get("split.tensors.count")
    if isinstance(declared, int) and declared != len(tensors):
        raise GGUFError(src, f"split model declares {declared} tensors, parts hold {len(tensors)}")
    return GGUFModel(paths=tuple(h.path for h in headers), version=first.version, metadata=first.metadata,
                     tensors=tuple(tensors), file_size_bytes=sum(h.file_size_bytes for h in headers),
                     splits=len(headers), headers=tuple(headers))
