"""Real llama.cpp runs (llama-cpp-python) in a child process, measured like llama-bench.

The child loads the model, warms up, then times prompt processing (pp) and
generation (tg) over several repetitions; the parent reads its JSON result and
llama.cpp's log (model, KV, compute and output buffer sizes). A native crash
(the AMX repack path segfaults on some CPUs) kills only the child; the caller
gets the signal, and by default a retry with repacking off.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from fitcheck.errors import LlamaRunError
from fitcheck.interrupts import signals_raise  # noqa: F401  (imported from here by older callers)
from fitcheck.estimator.settings import RuntimeSettings

RunSettings = RuntimeSettings  # the run uses exactly the settings an estimate assumes

MIB = 1024 * 1024




@dataclass(frozen=True)
class LlamaRunResult:
    model_path: str
    n_prompt: int
    n_gen: int
    reps: int
    prompt_tps: float | None
    prompt_tps_std: float | None
    generation_tps: float | None
    generation_tps_std: float | None
    ttft_s: float | None
    load_s: float
    peak_memory_bytes: int
    rss_after_load_bytes: int
    buffers: dict[str, int]
    settings: RunSettings
    system_info: str
    llama_cpp_python: str
    crashed_first: str | None = None
    log_tail: str = field(default="", repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("log_tail")
        return d


_BUF = re.compile(r"^(?P<where>\w+):\s+(?P<dev>\S+)\s+(?P<kind>model|KV|compute|output) buffer size =\s+(?P<mib>[\d.]+) MiB", re.M)


def parse_buffers(log: str) -> dict[str, int]:
    """Sum llama.cpp's reported buffer sizes per kind (bytes; log has 0.01 MiB resolution).

    The compute buffer is reserved more than once while the context is built;
    the last reservation per device is the one kept.
    """
    totals = {"model": 0, "KV": 0, "output": 0}
    compute: dict[str, float] = {}
    for m in _BUF.finditer(log):
        mib = float(m["mib"])
        if m["kind"] == "compute":
            compute[m["dev"]] = mib
        else:
            totals[m["kind"]] += mib
    out = {f"{k.lower()}_bytes": round(v * MIB) for k, v in totals.items()}
    out["compute_bytes"] = round(sum(compute.values()) * MIB)
    return out


def default_threads() -> int:
    """llama.cpp's default (physical cores), within the CPUs this process may run on (taskset, cgroups)."""
    try:
        import psutil

        physical = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        physical = os.cpu_count() or 1
    try:
        return max(1, min(physical, len(os.sched_getaffinity(0))))
    except (AttributeError, OSError):
        return physical


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


class LlamaSession:
    """One llama.cpp child process for several runs (`run`): llama_cpp is imported once, each job loads its own
    model. The child has its own session: on timeout, interrupt or close the whole group is killed, leaving no
    orphans; it also dies with this process (PR_SET_PDEATHSIG, and a watch on its parent) when this one is killed
    outright. A native crash ends the child only; the next job starts a new one."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.lines: queue.Queue | None = None

    def __enter__(self) -> "LlamaSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "fitcheck.calibration._llama_child"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        self.lines = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True).start()

    def close(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc)
            self.proc = None

    def job(self, cfg: dict, timeout_s: float) -> tuple[int | None, str, str]:
        """(exit code, or None while the child lives on; its answer line; llama.cpp's log of this job)."""
        fd, log = tempfile.mkstemp(prefix="fitcheck-llama-", suffix=".log")
        os.close(fd)
        try:
            with signals_raise():
                try:
                    if self.proc is None:
                        self._start()
                    self.proc.stdin.write(json.dumps({**cfg, "parent_pid": os.getpid(), "log": log}) + "\n")
                    self.proc.stdin.flush()
                    line = self.lines.get(timeout=timeout_s)
                except queue.Empty:
                    self.close()
                    raise LlamaRunError(f"llama.cpp run on {cfg['model']} timed out after {timeout_s:.0f} s") from None
                except BrokenPipeError:
                    line = None
                except BaseException:
                    self.close()
                    raise
                rc = None
                if line is None:  # the child ended (a crash): its exit code says how
                    rc = self.proc.wait()
                    self.proc = None
            with open(log, errors="replace") as f:
                err = f.read()
        finally:
            os.unlink(log)
        return rc, line or "", err


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _child(cfg: dict, timeout_s: float, session: LlamaSession | None = None) -> tuple[int, str, str]:
    """One job: in `session`, else in a child of its own."""
    with contextlib.nullcontext(session) if session is not None else LlamaSession() as s:
        rc, out, err = s.job(cfg, timeout_s)
    return (0 if rc is None else rc), out, err


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


def _ggml_type_id(name: str) -> int:
    from gguf.constants import GGMLQuantizationType

    return int(GGMLQuantizationType[name.upper()])


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def run_llama(
    model_path: str | os.PathLike,
    *,
    n_prompt: int = 512,
    n_gen: int = 128,
    reps: int = 3,
    settings: RunSettings | None = None,
    tg_depth: int = 0,
    depth: int = 0,
    n_parallel: int = 1,
    timeout_s: float = 600,
    retry_on_crash: bool = True,
    session: LlamaSession | None = None,
) -> LlamaRunResult:
    """Load and time a model with llama.cpp in a child process (`session`'s, else one of its own). `depth`: as
    llama-bench -d, the cache filled with that many tokens first, the prompt timed on top of them, then the
    generation on top of both (each repetition fills it again). `n_parallel` > 1: batched decode of that many
    sequences at `depth` (generation_tps is then the aggregate: tokens of all sequences per second)."""
    s = settings or RunSettings()
    if s.n_threads is None:
        s = RunSettings(**{**asdict(s), "n_threads": default_threads()})
    need_ctx = (n_parallel * (max(depth, 1) + n_gen) if n_parallel > 1 else depth + n_prompt + n_gen if depth
                else max(n_prompt, tg_depth + n_gen))
    if s.n_ctx < need_ctx:
        raise LlamaRunError(f"n_ctx {s.n_ctx} is smaller than the {need_ctx} tokens the run needs")
    cfg = {**asdict(s), "model": str(model_path), "n_prompt": n_prompt, "n_gen": n_gen, "reps": reps, "tg_depth": tg_depth,
           "depth": depth, "n_parallel": n_parallel,
           "type_k": _ggml_type_id(s.type_k), "type_v": _ggml_type_id(s.type_v)}
    crashed = None
    rc, out, err = _child(cfg, timeout_s, session)
    if rc < 0 and retry_on_crash:
        crashed = f"llama.cpp died with {_signal_name(rc)}" + ("" if s.use_extra_bufts else " (repacking already off)")
        if s.use_extra_bufts:
            cfg["use_extra_bufts"] = False
            s = RunSettings(**{**asdict(s), "use_extra_bufts": False})
            rc, out, err = _child(cfg, timeout_s, session)
    if rc < 0:
        raise LlamaRunError(f"llama.cpp died with {_signal_name(rc)} running {model_path}")
    last = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        data = json.loads(last) if last else {}
    except json.JSONDecodeError:
        data = {}
    if rc != 0 or "error" in data or not data:
        reason = data.get("error") if data else None
        if not reason:
            tail = [ln for ln in err.strip().splitlines() if ln.strip()]
            if any("No module named 'llama_cpp'" in ln for ln in tail):
                reason = "llama-cpp-python is not installed (pip install llama-cpp-python)"
            else:
                reason = tail[-1] if tail else f"exit code {rc}"
        raise LlamaRunError(f"{model_path}: {reason}")
    pp_mean, pp_std = _mean_std([n_prompt / t for t in data["pp_s"]])
    tg_mean, tg_std = _mean_std([n_gen * max(n_parallel, 1) / t for t in data["tg_s"]])
    return LlamaRunResult(
        model_path=str(model_path), n_prompt=n_prompt, n_gen=n_gen, reps=reps,
        prompt_tps=pp_mean, prompt_tps_std=pp_std, generation_tps=tg_mean, generation_tps_std=tg_std,
        ttft_s=min(data["pp_s"]) if data["pp_s"] else None, load_s=data["load_s"],
        peak_memory_bytes=data["peak_rss_bytes"], rss_after_load_bytes=data["rss_after_load_bytes"],
        buffers=parse_buffers(err), settings=s, system_info=data["system_info"],
        llama_cpp_python=data["llama_cpp_python"], crashed_first=crashed, log_tail=err[-4000:],
    )
