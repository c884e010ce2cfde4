"""Hostile models: whatever the bytes or strings, only fitcheck's own error escapes, fast, and nothing reaches
the terminal as markup or control codes.

10 000 mutations of a small synthetic model (bit flips, truncations, inflated counts, absurd shapes, hostile
strings) go through the header reader, inspect's summary, the estimator on a fixed device, and every terminal
view that shows a model; a sample goes through the real CLI.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import struct
import time

import pytest
from rich.console import Console

from fitcheck.calibration.synth import SynthModel, write_synthetic
from fitcheck.device.device_speed import backend_params
from fitcheck.errors import FitcheckError
from fitcheck.estimate import estimate_spec
from fitcheck.estimator.evaluate import Target
from fitcheck.estimator.settings import RuntimeSettings
from fitcheck.estimator.speed import DeviceSpeedSpec
from fitcheck.model.gguf_reader import model_from_header, parse_header_bytes
from fitcheck.model.inspection import describe
from fitcheck.model.model_spec import spec_from_gguf
from fitcheck.views import render

from .conftest import run_cli, run_cli_process
from .test_inspect_fuzz import _alarm, _Timeout, count_offsets

HOSTILE = ["[/]", "[bold red]x[/bold red]", "[link=https://evil.example]click[/link]", "\x1b[2J\x1b[H", "\x1b]0;pwned\x07",
           "\x1b]52;c;cHduZWQ=\x07", "a\u202eexe.gguf", "\r\noverwritten", "x" * 5000, "\x00nul", "[", "]", "\\[/]"]
TARGET = Target("fuzz device", 8_000_000_000, "test", DeviceSpeedSpec("cpu", 40.0, 0.5), backend_params("cpu"))
N = {"flip": 3000, "cut": 2500, "count": 2500, "shape": 1000, "string": 1000}  # 10 000 in all


def _seed(tmp, **kw) -> bytes:
    kw.setdefault("extra_metadata", {"llama.attention.sliding_window": 128})
    m = SynthModel(n_layer=2, n_embd=64, n_head=(2, 4), n_head_kv=(1, 2), n_ff=128, n_vocab=300, weight_type="Q8_0",
                   type_overrides={"ffn_down": "Q4_0", "attn_v": "F16"}, **kw)
    (path,) = write_synthetic(tmp / "seed.gguf", m)
    return path.read_bytes()


def _tensor_dim_offsets(data: bytes) -> list[int]:
    """Offsets of each tensor's dims in the tensor table."""
    n_tensors = struct.unpack_from("<Q", data, 8)[0]
    _, pos = count_offsets(data)
    out = []
    for _ in range(n_tensors):
        pos += 8 + struct.unpack_from("<Q", data, pos)[0]
        n_dims = struct.unpack_from("<I", data, pos)[0]
        out += [pos + 4 + 8 * d for d in range(n_dims)]
        pos += 4 + 8 * n_dims + 4 + 8
    return out


def cases(tmp) -> list[tuple[str, bytes]]:
    rng = random.Random(16)
    seed = _seed(tmp)
    offs, header_end = count_offsets(seed)
    dims = _tensor_dim_offsets(seed)
    out = []
    for _ in range(N["flip"]):
        b = bytearray(seed)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(header_end + 400)] ^= 1 << rng.randrange(8)
        out.append(("flip", bytes(b)))
    out += [("cut", seed[: rng.randrange(len(seed))]) for _ in range(N["cut"])]
    for _ in range(N["count"]):
        b = bytearray(seed)
        off = rng.choice(offs)
        old = struct.unpack_from("<Q", b, off)[0]
        new = rng.choice([2**63, 2**64 - 1, 2**32, 2**24 + 1, 10**7, 0, old + rng.randint(1, 1000), old * rng.randint(2, 1000)])
        struct.pack_into("<Q", b, off, new % 2**64)
        out.append(("count", bytes(b)))
    for _ in range(N["shape"]):
        b = bytearray(seed)
        for _ in range(rng.randint(1, 3)):
            struct.pack_into("<Q", b, rng.choice(dims), rng.choice([0, 1, 2, 3, 31, 33, 2**31, 2**62, 2**64 - 1]))
        out.append(("shape", bytes(b)))
    for i in range(N["string"]):
        s = rng.choice(HOSTILE) + rng.choice(HOSTILE)
        kw = {"name": s} if i % 2 else {"extra_metadata": {"general.size_label": s, "general.basename": s,
                                                            "llama.attention.sliding_window": 128}}
        sub = tmp / f"s{i % 7}"
        sub.mkdir(exist_ok=True)
        if i < 14:  # a few distinct files are enough: the strings vary by i % 7 and i % 2
            data = _seed(sub, **kw)
            out.append(("string", data))
        else:
            out.append(("string", out[-14][1]))
    return out


def through_everything(data: bytes) -> str:
    """Header -> summary -> estimate -> terminal views. Returns 'ok' or 'error'; anything else escapes."""
    try:
        model = model_from_header(parse_header_bytes(data, "fuzz.gguf"))
        info = describe(model)
    except FitcheckError:
        return "error"
    con = Console(file=io.StringIO(), width=80, force_terminal=True)
    render.inspect_view(con, info)
    try:
        spec = spec_from_gguf(model)
        d = estimate_spec(spec, {"source": "gguf", "file": "fuzz.gguf"}, TARGET, RuntimeSettings(n_ctx=512))
    except FitcheckError:
        return "error"
    render.estimate_view(con, d)
    render.scan_view(con, {"models": [{"name": spec.name, "also": [spec.architecture], "splits": 1, "source": "path",
                                       "quant": spec.file_type, "parameter_count": spec.parameter_count,
                                       "needed_bytes": d["memory"]["total_bytes"], "verdict": d["fit"]["verdict"],
                                       "decode_tps": (d["speed"] or {}).get("decode_tps")}],
                           "problems": [{"name": spec.name, "source": "path", "error": spec.name}],
                           "skipped": [], "searched": [], "usable_bytes": TARGET.usable_bytes, "n_ctx": 512,
                           "elapsed_s": 0.0, "device": d["device"]})
    out = con.file.getvalue()
    for bad in ("\x1b]", "\x1b[2J", "\u202e", "\x07"):  # no OSC (links, title, clipboard), no clear, no bidi
        assert bad not in out, repr(bad)
    return "ok"


def test_ten_thousand_mutations_only_fitcheck_errors_and_fast(tmp_path):
    all_cases = cases(tmp_path)
    assert len(all_cases) >= 10_000
    outcomes: dict[str, dict[str, int]] = {}
    slowest = 0.0
    old = signal.signal(signal.SIGPROF, _alarm)
    try:
        for i, (kind, data) in enumerate(all_cases):
            signal.setitimer(signal.ITIMER_PROF, 2.0)  # CPU time: a busy machine slows the clock, not the work
            t0 = time.process_time()
            try:
                r = through_everything(data)
            except _Timeout:
                pytest.fail(f"case {i} ({kind}) took over 2 s")
            finally:
                signal.setitimer(signal.ITIMER_PROF, 0)
            slowest = max(slowest, time.process_time() - t0)
            outcomes.setdefault(kind, {"ok": 0, "error": 0})[r] += 1
    finally:
        signal.signal(signal.SIGPROF, old)
    print(outcomes, f"slowest {slowest * 1000:.0f} ms")
    for kind in ("flip", "shape", "string"):
        assert outcomes[kind]["ok"] > 0, kind  # the pipeline past the reader was really exercised
    assert outcomes["cut"]["ok"] == 0 and outcomes["count"]["error"] > 0


def test_hostile_names_through_the_cli_are_plain_text(tmp_path):
    for i, s in enumerate(HOSTILE[:8]):
        d = tmp_path / f"m{i}"
        d.mkdir()
        (path,) = write_synthetic(d / f"{s[:20].replace('/', '_').replace(chr(0), '')}.gguf",
                                  SynthModel(n_layer=1, n_embd=64, n_head=2, n_head_kv=1, n_ff=128, n_vocab=300, name=s))
        for args in (("inspect", str(path)), ("estimate", "-m", str(path), "--memory-gb", "8"),
                     ("scan", "--no-stores", str(d), "--memory-gb", "8")):
            r = run_cli(*args)
            assert r.returncode == 0, (args, r.stderr)
            for bad in ("\x1b]", "\x1b[2J", "\u202e", "\x07"):
                assert bad not in r.stdout + r.stderr, (args, repr(bad))
            assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_a_sample_through_the_real_cli_is_one_line(tmp_path):
    rng = random.Random(7)
    (tmp_path / "c").mkdir()
    sample = rng.sample(cases(tmp_path / "c"), 60)
    for i, (kind, data) in enumerate(sample):
        p = tmp_path / f"case{i}.gguf"
        p.write_bytes(data)
        for args in (("inspect", str(p)), ("estimate", "-m", str(p), "--memory-gb", "8")):
            r = run_cli_process(*args)
            assert r.returncode in (0, 1), (kind, args, r.stderr)
            assert "Traceback" not in r.stderr, (kind, r.stderr)
            if r.returncode == 1:
                assert r.stderr.count("\n") == 1 and r.stderr.startswith("fitcheck: error: "), r.stderr


@pytest.mark.parametrize("plan, meta, why", [
    ([], {}, "no tensors"),
    ([("token_embd.weight", (64, 0), "F32"), ("blk.0.attn_q.weight", (64, 0), "F32")], {"llama.block_count": 1}, "zero dims"),
    ([("token_embd.weight", (64, 300), "F32"), ("blk.0.ffn_gate_exps.weight", (64,), "F32")],
     {"llama.block_count": 1, "llama.expert_count": 8, "llama.expert_used_count": 2}, "1-D expert tensor"),
    ([("token_embd.weight", (64, 300), "F32")], {"llama.block_count": 1, "llama.expert_count": 8,
                                                 "llama.expert_used_count": 99}, "more experts used than exist"),
])
def test_absurd_shapes_are_answered_or_refused_in_one_line(tmp_path, plan, meta, why):
    from fitcheck.calibration.synth import write_gguf

    base = {"llama.embedding_length": 64, "llama.attention.head_count": 2, "llama.context_length": 512, **meta}
    (path,) = write_gguf(tmp_path / "odd.gguf", "llama", plan, base, n_vocab=300)
    for args in (("inspect", str(path)), ("estimate", "-m", str(path), "--memory-gb", "8", "--bandwidth-gbps", "40")):
        r = run_cli(*args)
        assert r.returncode in (0, 1), (why, r.stderr)
        assert "Traceback" not in r.stderr
        if r.returncode:
            assert r.stderr.count("\n") == 1 and r.stderr.startswith("fitcheck: error: "), (why, r.stderr)


def _sparse_header(path, body: bytes, size: int = 40 << 30):
    """A GGUF header (v3, 0 tensors, 1 key) followed by a hole up to `size` bytes."""
    with open(path, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + body)
        f.truncate(size)
    return path


@pytest.mark.parametrize("what, body", [
    ("10 M nested empty arrays", struct.pack("<Q", 1) + b"k" + struct.pack("<IIQ", 9, 9, 10_000_000)),
    ("2^24 + 1 strings", struct.pack("<Q", 20) + b"tokenizer.ggml.token" + struct.pack("<IIQ", 9, 8, 2**24 + 1)),
    ("a 4 GiB string", struct.pack("<Q", 1) + b"k" + struct.pack("<IQ", 8, 4 << 30)),
])
def test_a_sparse_40_gb_hostile_file_is_refused_in_well_under_a_second(tmp_path, what, body):
    p = _sparse_header(tmp_path / "hostile.gguf", body)
    t0 = time.process_time()  # CPU time: reading the 40 GB would take tens of seconds of it, on any load
    r = run_cli("inspect", str(p))
    took = time.process_time() - t0
    assert r.returncode == 1 and r.stderr.startswith("fitcheck: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert took < 1.0, f"{what}: {took:.2f} s of CPU"


@pytest.mark.slow
def test_header_of_a_40_gb_model_reads_under_an_address_space_limit(tmp_path):
    import resource
    import subprocess
    import sys

    m = SynthModel(n_layer=64, n_embd=8192, n_head=64, n_head_kv=8, n_ff=28672, n_vocab=32000, weight_type="Q8_0")
    (path,) = write_synthetic(tmp_path / "big.gguf", m, sparse=True)
    assert path.stat().st_size > 40e9

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    r = subprocess.run([sys.executable, "-m", "fitcheck", "inspect", str(path), "--json"], capture_output=True, text=True,
                       preexec_fn=limit, timeout=120)
    assert r.returncode == 0, r.stderr


def test_one_bad_entry_never_stops_a_scan(tmp_path):
    """Hostile Ollama manifests and blobs are each listed with a reason; the good model is still answered."""
    from .test_scan import ollama_manifest

    store = tmp_path / "ollama"
    (good,) = write_synthetic(tmp_path / "good.gguf", SynthModel(n_layer=1, n_embd=64, n_head=2, n_head_kv=1, n_ff=128, n_vocab=300))
    ollama_manifest(store, "good", "latest", good)
    mdir = store / "manifests" / "registry.ollama.ai" / "library" / "bad"
    mdir.mkdir(parents=True)
    (mdir / "ints").write_text('{"layers":[1]}')
    (mdir / "nulls").write_text('{"layers":[null]}')
    (mdir / "list").write_text("[1, 2]")
    (mdir / "deep").write_text("[" * 100_000 + "]" * 100_000)
    (mdir / "zero").symlink_to("/dev/zero")
    os.mkfifo(mdir / "fifo")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:$6$hash")
    hexd = "ab" * 32
    (store / "blobs" / f"sha256-{hexd}").symlink_to(secret)
    (mdir / "outside").write_text(json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model",
                                                          "digest": f"sha256:{hexd}", "size": 12}]}))
    t0 = time.perf_counter()  # a FIFO read would block forever: any bound catches it, a generous one holds under load
    r = run_cli("scan", "--json", "--memory-gb", "8", env={"OLLAMA_MODELS": str(store), "HOME": str(tmp_path)})
    assert time.perf_counter() - t0 < 60
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert [m["name"] for m in d["models"]] == ["good:latest"] and d["models"][0]["verdict"] == "fits"
    problems = {p["name"]: p["error"] for p in d["problems"]}
    for tag in ("ints", "nulls", "list", "deep", "zero", "fifo"):
        assert f"bad:{tag}" in problems, tag
    assert problems["bad:zero"] == "unreadable manifest: not a regular file"
    assert "links outside the store" in problems["bad:outside"]
    assert "root:" not in r.stdout + r.stderr  # nothing of the file it points to is shown


def test_markdown_report_escapes_like_the_html(tmp_path):
    from fitcheck.views.report import to_html, to_markdown, Section

    hostile = "<script>alert(1)</script> | [x](javascript:alert(1)) *bold*"
    sections = [Section("T", [hostile], (["a", "b"], [[hostile, "1"]]))]
    md = to_markdown("title " + hostile, sections, "img")
    assert "<script>" not in md and "javascript:alert" not in md.replace("javascript\\:", "")
    assert "<script>" not in to_html("t", sections, {})
    # ... and plain text stays as written: no backslash in "Q6_K" or "~5.2" where no renderer needs one
    from fitcheck.views.report import md as to_md

    assert to_md("Q6_K at ~5.2 t/s, 12:30") == "Q6_K at ~5.2 t/s, 12:30"
    assert to_md("~5 and ~6 _emph_") == "\\~5 and \\~6 \\_emph\\_"  # a pair of tildes, emphasis: escaped


GOOD_PROFILE = {"schema": "fitcheck-profile", "version": 1, "created": "2026-11-26T00:00:00+00:00", "warnings": [],
                "memory": {"status": "ok", "available_bytes": 8_000_000_000, "limit_bytes": 16_000_000_000},
                "bandwidth": {"status": "ok", "read_gbps": 40.0, "method": "C kernels"},
                "compute": {"status": "ok", "fp32_gflops": 500.0}, "cpu": {"model": "test CPU", "llc_bytes": 33554432}}


def _with(path: str, value):
    import copy

    d = copy.deepcopy(GOOD_PROFILE)
    *parents, leaf = path.split(".")
    node = d
    for k in parents:
        node = node[k]
    node[leaf] = value
    return json.dumps(d)


CORRUPT = {
    "truncated": json.dumps(GOOD_PROFILE)[:57],
    "a list": "[1, 2, 3]",
    "memory probe failed": _with("memory", {"status": "error", "reason": "probe failed"}),
    "memory null": _with("memory.available_bytes", None),
    "memory a string": _with("memory.limit_bytes", "lots"),
    "memory NaN": json.dumps(GOOD_PROFILE).replace("8000000000", "NaN"),
    "negative bandwidth": _with("bandwidth.read_gbps", -5.2),
    "infinite bandwidth": json.dumps(GOOD_PROFILE).replace("40.0", "Infinity"),
    "negative GFLOPS": _with("compute.fp32_gflops", -500.0),
    "cpu a list": _with("cpu", [1, 2]),
    "calibration without flops_per_weight": _with("calibration", {"params": {"bw_eff": 0.8, "t_layer_s": 0.001,
                                                                              "pp_eff": {"q4": 0.5}}}),
    "calibration bw_eff 0": _with("calibration", {"params": {"bw_eff": 0, "t_layer_s": 0.001, "pp_eff": {"q4": 0.5},
                                                             "flops_per_weight": {"q4": 5.0}}}),
    "huge": json.dumps({**GOOD_PROFILE, "pad": "x" * (5 << 20)}),
}


@pytest.mark.parametrize("case", sorted(CORRUPT) + ["/dev/zero", "fifo", "directory"])
def test_a_corrupt_profile_is_refused_in_one_line_never_used(fitcheck_home, case):
    fitcheck_home.mkdir(parents=True, exist_ok=True)
    p = fitcheck_home / "profile.json"
    if case == "/dev/zero":
        p.symlink_to("/dev/zero")
    elif case == "fifo":
        os.mkfifo(p)
    elif case == "directory":
        p.mkdir()
    else:
        p.write_text(CORRUPT[case])
    t0 = time.perf_counter()  # a FIFO profile would block forever: a generous bound catches it under any load
    r = run_cli("estimate", "-m", "1.8b", "--json")
    assert time.perf_counter() - t0 < 60, case
    assert "Traceback" not in r.stderr
    assert r.returncode == 1, (case, r.stdout[:300])
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("fitcheck: error: "), r.stderr
    assert "run `fitcheck" in r.stderr, r.stderr


def test_a_failed_bandwidth_probe_means_no_speed_not_a_made_up_one(fitcheck_home):
    fitcheck_home.mkdir(parents=True, exist_ok=True)
    (fitcheck_home / "profile.json").write_text(_with("bandwidth", {"status": "error", "reason": "no compiler"}))
    r = run_cli("estimate", "-m", "1.8b", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["speed"] is None
    assert "no bandwidth measurement" in r.stderr


@pytest.mark.slow
def test_the_main_job_reprobes_over_a_corrupt_profile(fitcheck_home):
    fitcheck_home.mkdir(parents=True, exist_ok=True)
    (fitcheck_home / "profile.json").write_text(CORRUPT["negative bandwidth"])
    r = run_cli_process("--json", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "probing again" in r.stderr
    d = json.loads(r.stdout)
    assert all(x["decode_tps"] is None or x["decode_tps"] > 0 for x in d["rows"])
    assert json.loads((fitcheck_home / "profile.json").read_text())["bandwidth"]["read_gbps"] > 0


def test_json_out_is_strict():
    r = run_cli("inspect", "--json", "/nonexistent.gguf")
    assert r.returncode == 1
    from fitcheck.jsonio import dumps

    assert dumps({"a": float("nan"), "b": [float("inf")]}) == '{"a": null, "b": [null]}'


def test_markup_in_a_report_path_and_the_speed_line_survive(tmp_path):
    out = tmp_path / "a[" / "]b[bold]" / "r[red].html"  # the path holds "a[/]b[bold]"
    out.parent.mkdir(parents=True)
    r = run_cli("report", "-d", "iPhone 15", "-o", str(out))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert out.exists() and "a[/]b[bold]/r[red].html" in r.stdout and "r[red].md" in r.stdout
    r = run_cli("estimate", "-m", "1.8b", "-d", "MacBook Air M1 16GB")
    assert "(metal, 68.2 GB/s, 2.62 TFLOPS; published specs)" in r.stdout  # brackets of rich markup never eat it


def test_nan_metadata_gives_valid_json(tmp_path):
    m = SynthModel(n_layer=1, n_embd=64, n_head=2, n_head_kv=1, n_ff=128, n_vocab=300,
                   extra_metadata={"llama.rope.freq_base": float("nan"), "llama.rope.scaling.factor": float("inf")})
    (path,) = write_synthetic(tmp_path / "nan.gguf", m)
    r = run_cli("inspect", str(path), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert d["rope"]["freq_base"] is None


def test_a_file_rewritten_during_scans_is_an_error_not_a_crash(tmp_path):
    import threading

    (path,) = write_synthetic(tmp_path / "m.gguf", SynthModel(n_layer=2, n_embd=256, n_head=4, n_head_kv=2, n_ff=512,
                                                              n_vocab=4000))
    data = path.read_bytes()
    stop = threading.Event()

    def rewrite():
        while not stop.is_set():
            with open(path, "r+b") as f:  # in place, as a download tool or a careless copy does
                f.truncate(len(data) // 3)
                f.seek(0)
                f.write(data)

    t = threading.Thread(target=rewrite, daemon=True)
    t.start()
    try:
        outcomes = set()
        for _ in range(40):
            r = run_cli("scan", "--no-stores", str(tmp_path), "--memory-gb", "8", "--json")
            assert r.returncode == 0, r.stderr
            d = json.loads(r.stdout)
            outcomes.add("model" if d["models"] else "problem")
    finally:
        stop.set()
        t.join()
    assert outcomes  # each scan ended with the model listed or with its problem, never a signal


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs (root only; skipped where mounting is not allowed)."""
    import subprocess

    where = tmp_path / "small"
    where.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_or_read_only_cache_is_one_line_and_leaves_nothing(small_disk):
    import subprocess

    from fitcheck.calibration.calibrate import ensure_model
    from fitcheck.calibration.synth import SynthModel
    from fitcheck.errors import CalibrationError

    big = SynthModel(n_layer=8, n_embd=1024, n_head=8, n_head_kv=4, n_ff=2816, n_vocab=8000, weight_type="Q8_0")
    with pytest.raises(CalibrationError, match=r"no room for the .* calibration model .* MiB are free"):
        ensure_model(big, small_disk / "calibration")
    # a model that the free space only just holds, written while the disk fills up under it
    (small_disk / "filler").write_bytes(bytes(6 << 20))
    mid = SynthModel(n_layer=2, n_embd=1024, n_head=8, n_head_kv=4, n_ff=2816, n_vocab=8000, weight_type="Q8_0")
    try:
        ensure_model(mid, small_disk / "calibration")
    except CalibrationError as e:
        assert "\n" not in str(e)
    assert not list(small_disk.rglob("*.tmp*"))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(CalibrationError, match="Read-only file system"):
        ensure_model(big, small_disk / "elsewhere")
