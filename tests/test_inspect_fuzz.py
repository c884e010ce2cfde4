"""Mutation fuzzing: whatever the bytes, only fitcheck's own error type may escape, and fast."""

from __future__ import annotations

import random
import signal
import struct

import pytest

from fitcheck.errors import GGUFError
from fitcheck.model.gguf_reader import model_from_header, parse_header_bytes
from fitcheck.model.inspection import inspect_gguf
from fitcheck.model.model_spec import spec_from_gguf
from fitcheck.calibration.synth import SynthModel, write_synthetic

CASES_PER_KIND = 800  # bit flips, truncations, inflated counts: 2 400 cases in all


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory) -> bytes:
    m = SynthModel(
        n_layer=2, n_embd=64, n_head=(2, 4), n_head_kv=(1, 2), n_ff=128, n_vocab=300,
        weight_type="Q8_0", type_overrides={"ffn_down": "Q4_0", "attn_v": "F16"},
        extra_metadata={"llama.attention.sliding_window": 128},
    )
    (path,) = write_synthetic(tmp_path_factory.mktemp("fuzz") / "seed.gguf", m)
    return path.read_bytes()


def count_offsets(data: bytes) -> list[int]:
    """Offsets of every u64 count/length in the header (from the real parse's layout)."""
    offs = [8, 16]  # tensor count, kv count
    pos = 24
    n_kv = struct.unpack_from("<Q", data, 16)[0]
    for _ in range(n_kv):
        klen = struct.unpack_from("<Q", data, pos)[0]
        offs.append(pos)
        pos += 8 + klen
        vtype = struct.unpack_from("<I", data, pos)[0]
        pos += 4
        if vtype == 8:
            offs.append(pos)
            pos += 8 + struct.unpack_from("<Q", data, pos)[0]
        elif vtype == 9:
            itype, n = struct.unpack_from("<IQ", data, pos)
            offs.append(pos + 4)
            pos += 12
            if itype == 8:
                for _ in range(n):
                    offs.append(pos)
                    pos += 8 + struct.unpack_from("<Q", data, pos)[0]
            else:
                pos += n * {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}[itype]
        else:
            pos += {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}[vtype]
    return offs, pos


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def check(data: bytes) -> str:
    """Parse fully; return 'ok' or 'error'. Anything else escapes and fails the test."""
    try:
        spec_from_gguf(model_from_header(parse_header_bytes(data, "fuzz.gguf")))
        return "ok"
    except GGUFError:
        return "error"


def run_cases(cases):
    outcomes = {"ok": 0, "error": 0}
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        for i, data in enumerate(cases):
            signal.setitimer(signal.ITIMER_REAL, 2.0)  # a hang or runaway allocation fails loudly
            try:
                outcomes[check(data)] += 1
            except _Timeout:
                pytest.fail(f"case {i} took over 2 s")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    return outcomes


def test_seed_is_valid(seed_file):
    assert check(seed_file) == "ok"


def test_bit_flips(seed_file):
    rng = random.Random(1)
    _, header_end = count_offsets(seed_file)
    cases = []
    for _ in range(CASES_PER_KIND):
        b = bytearray(seed_file)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(header_end + 400)  # header, tensor table and the start of data
            b[pos] ^= 1 << rng.randrange(8)
        cases.append(bytes(b))
    out = run_cases(cases)
    assert out["error"] > 0 and out["ok"] > 0  # both paths really exercised


def test_truncations(seed_file):
    rng = random.Random(2)
    cases = [seed_file[: rng.randrange(len(seed_file))] for _ in range(CASES_PER_KIND)]
    out = run_cases(cases)
    assert out["error"] == CASES_PER_KIND  # any cut loses tensor data or header bytes


def test_inflated_counts(seed_file):
    rng = random.Random(3)
    offs, _ = count_offsets(seed_file)
    values = [2**63, 2**64 - 1, 2**32, 2**40, 10**12]
    cases = []
    for _ in range(CASES_PER_KIND):
        b = bytearray(seed_file)
        off = rng.choice(offs)
        old = struct.unpack_from("<Q", b, off)[0]
        new = rng.choice(values + [old + rng.randint(1, 1000), old * rng.randint(2, 1000)])
        struct.pack_into("<Q", b, off, new % 2**64)
        cases.append(bytes(b))
    out = run_cases(cases)
    assert out["error"] >= CASES_PER_KIND * 0.9


def test_fuzzed_file_through_public_api(seed_file, tmp_path):
    b = bytearray(seed_file)
    struct.pack_into("<Q", b, 16, 2**63)
    p = tmp_path / "bad.gguf"
    p.write_bytes(bytes(b))
    with pytest.raises(GGUFError):
        inspect_gguf(p)
