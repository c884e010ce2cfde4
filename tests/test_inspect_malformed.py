"""Every malformed-input failure mode: fitcheck's own error, a clear message, no allocation."""

from __future__ import annotations

import struct

import pytest

from fitcheck.errors import FitcheckError, GGUFError
from fitcheck.model.gguf_reader import model_from_header, parse_header_bytes, read_header
from fitcheck.model.model_spec import spec_from_gguf

from . import gguf_bytes as gb
from .conftest import run_cli


def spec_of(data: bytes):
    return spec_from_gguf(model_from_header(parse_header_bytes(data, "x.gguf")))


def test_minimal_valid_file_parses():
    spec = spec_of(gb.gguf())
    assert spec.n_layer == 2 and spec.n_embd == 64 and spec.parameter_count == 64 * 32
    assert spec.n_vocab == 32  # from token_embd when there is no tokenizer


CASES = {
    "bad magic": (gb.gguf(magic=b"GGML"), "not a GGUF file"),
    "version 1": (gb.gguf(version=1), "version 1 is not supported"),
    "version 99": (gb.gguf(version=99), "unsupported GGUF version 99"),
    "header cut": (gb.gguf()[:10], "truncated"),
    "kv count": (gb.gguf(n_kv=2**62), "declares 4611686018427387904 metadata keys"),
    "tensor count": (gb.gguf(n_tensors=2**63), "declares 9223372036854775808 tensors"),
    "string length": (gb.gguf(kvs=[gb.s("k") + struct.pack("<IQ", gb.T_STR, 2**40) + b"abc"]), "declares 1099511627776 bytes"),
    "key length": (gb.gguf(kvs=[struct.pack("<Q", 2**63) + b"abc"]), "declares 9223372036854775808 bytes"),
    "array length": (
        gb.gguf(kvs=gb.llama_kvs() + [gb.kv_arr_u32("llama.x", [1, 2], declared=2**63)]),
        "declares 9223372036854775808 items",
    ),
    "string array length": (
        gb.gguf(kvs=[gb.s("tokenizer.ggml.tokens") + struct.pack("<IIQ", gb.T_ARR, gb.T_STR, 2**60)]),
        "declares 1152921504606846976 items",
    ),
    "non-utf8 key": (gb.gguf(kvs=[gb.kv_u32("gen\xff", 1)[:0] + gb.s(b"gen\xff") + struct.pack("<II", 4, 1)]), "not valid UTF-8"),
    "non-utf8 value": (gb.gguf(kvs=[gb.kv_str("general.architecture", b"lla\xc3")]), "not valid UTF-8"),
    "duplicate key": (gb.gguf(kvs=gb.llama_kvs() + [gb.kv_u32("llama.block_count", 3)]), "duplicate metadata key 'llama.block_count'"),
    "unknown value type": (gb.gguf(kvs=[gb.s("k") + struct.pack("<I", 77)]), "unknown value type 77"),
    "n_dims": (gb.raw(gb.llama_kvs(), [gb.tensor_info("t", (32, 2, 1, 1, 1), 0, 0)]), "5 dimensions"),
    "zero dims": (gb.raw(gb.llama_kvs(), [gb.tensor_info("t", (), 0, 0)]) + b"\0" * 64, "0 dimensions"),
    "unknown tensor type": (gb.raw(gb.llama_kvs(), [gb.tensor_info("t", (32, 2), 4, 0)]), "unknown ggml type 4"),
    "misaligned offset": (gb.raw(gb.llama_kvs(), [gb.tensor_info("t", (32,), 0, 3)]) + b"\0" * 256, "not aligned to 32"),
    "duplicate tensor": (gb.gguf(tensors=[("t", (32,), 0), ("t", (32,), 0)]), "duplicate tensor name 't'"),
    "tensor data cut": (gb.gguf(tensors=[("t", (64, 64), 0)], data=False), "truncated: tensor 't' data ends"),
    "shape overflow": (gb.gguf(tensors=[("t", (2**32, 2**32), 0)], data=False), "overflows 64 bits"),
    "block size": (gb.gguf(tensors=[("t", (33, 2), 8)], data=False), "not a multiple of Q8_0 block size 32"),
    "no architecture": (gb.gguf(kvs=[gb.kv_u32("llama.block_count", 2)]), "missing required key general.architecture"),
    "no block count": (gb.gguf(kvs=[gb.kv_str("general.architecture", "llama")]), "missing required key llama.block_count"),
    "absurd block count": (gb.gguf(kvs=[gb.kv_str("general.architecture", "llama"), gb.kv_u32("llama.block_count", 4_000_000_000)]), "outside the plausible range"),
    "per-layer length": (
        gb.gguf(kvs=gb.llama_kvs()[:3] + [gb.kv_arr_u32("llama.attention.head_count", [4, 4, 4])]),
        "has 3 entries for 2 layers",
    ),
    "bad alignment": (gb.gguf(kvs=gb.llama_kvs() + [gb.kv_u32("general.alignment", 48)]), "not a positive power of two"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed(case):
    data, message = CASES[case]
    with pytest.raises(GGUFError) as e:
        spec_of(data)
    assert message in str(e.value)
    assert str(e.value).startswith("x.gguf: ")


def test_missing_and_directory_and_empty(tmp_path):
    with pytest.raises(GGUFError, match="no such file"):
        read_header(tmp_path / "nope.gguf")
    with pytest.raises(GGUFError, match="is a directory"):
        read_header(tmp_path)
    (tmp_path / "empty.gguf").write_bytes(b"")
    with pytest.raises(GGUFError, match="is empty"):
        read_header(tmp_path / "empty.gguf")


def test_49_byte_hostile_file_fails_fast(tmp_path):
    """The file that makes gguf-py's reader hang: one array declaring 2**63 elements."""
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gb.s("k") + struct.pack("<IIQ", gb.T_ARR, gb.T_U8, 2**63)
    assert len(data) == 49
    p = tmp_path / "hostile.gguf"
    p.write_bytes(data)
    with pytest.raises(GGUFError, match="declares 9223372036854775808 items"):
        read_header(p)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file"),
        (b"hello world, not a model", "not a GGUF file"),
        (gb.gguf()[:30], "declares 5 metadata keys but only 6 bytes are left"),
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gb.s("k") + struct.pack("<IIQ", 9, 0, 2**63), "declares"),
    ],
)
def test_cli_one_line_error(tmp_path, content, message):
    p = tmp_path / "m.gguf"
    if content is not None:
        p.write_bytes(content)
    r = run_cli("inspect", str(p))
    assert r.returncode != 0
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(p) in lines[0] and message in lines[0]
    assert "Traceback" not in r.stderr


def test_errors_are_one_family():
    assert issubclass(GGUFError, FitcheckError)
