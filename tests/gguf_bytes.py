"""Hand-assembled GGUF bytes for malformed-input tests (no writer guards in the way)."""

from __future__ import annotations

import struct

T_U8, T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64 = 0, 4, 5, 6, 7, 8, 9, 10


def s(text: str | bytes) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv_u32(key: str, v: int) -> bytes:
    return s(key) + struct.pack("<II", T_U32, v)


def kv_str(key: str, v: str | bytes) -> bytes:
    return s(key) + struct.pack("<I", T_STR) + s(v)


def kv_arr_u32(key: str, values: list[int], declared: int | None = None) -> bytes:
    n = len(values) if declared is None else declared
    return s(key) + struct.pack("<IIQ", T_ARR, T_U32, n) + struct.pack(f"<{len(values)}I", *values)


def tensor_info(name: str, shape: tuple[int, ...], ggml_type: int, offset: int, n_dims: int | None = None) -> bytes:
    nd = len(shape) if n_dims is None else n_dims
    return s(name) + struct.pack("<I", nd) + b"".join(struct.pack("<Q", d) for d in shape) + struct.pack("<IQ", ggml_type, offset)


def llama_kvs(n_layer: int = 2) -> list[bytes]:
    return [
        kv_str("general.architecture", "llama"),
        kv_u32("llama.block_count", n_layer),
        kv_u32("llama.embedding_length", 64),
        kv_u32("llama.attention.head_count", 4),
        kv_u32("llama.context_length", 256),
    ]


def gguf(
    kvs: list[bytes] | None = None,
    tensors: list[tuple[str, tuple[int, ...], int]] | None = None,
    *,
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
    magic: bytes = b"GGUF",
    data: bool = True,
) -> bytes:
    """A complete little-endian GGUF file; counts can be overridden to lie."""
    kvs = llama_kvs() if kvs is None else kvs
    tensors = [("token_embd.weight", (64, 32), 0)] if tensors is None else tensors
    infos, offset, sizes = [], 0, []
    for name, shape, gtype in tensors:
        n = 1
        for d in shape:
            n *= d
        size = n * 4 if gtype == 0 else n * 2
        infos.append(tensor_info(name, shape, gtype, offset))
        sizes.append(size)
        offset += -(-size // 32) * 32
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(infos)
    body += b"\0" * (-len(body) % 32)
    return body + (b"\0" * offset if data else b"")


def raw(kvs: list[bytes], infos: list[bytes]) -> bytes:
    """Header with hand-made tensor infos and no data."""
    return b"GGUF" + struct.pack("<IQQ", 3, len(infos), len(kvs)) + b"".join(kvs) + b"".join(infos)
