"""Child process for real llama.cpp runs (see llama_run.py): load, warm up, pp and tg.

Reads one job's settings per line of JSON on stdin and answers each with one JSON line on stdout, until stdin
closes (llama_cpp is imported once for all of a session's jobs). llama.cpp's own log of each job goes to the file
the job names (`log`), where the parent reads buffer sizes. A native crash kills only this process.
"""

import json
import random
import resource
import sys
import time


def _peak_rss_bytes() -> int:
    # VmHWM belongs to this process image; ru_maxrss on Linux survives execve and so
    # would report the (forked) parent's size when the parent is large
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def _current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            import os

            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return _peak_rss_bytes()


def _die_with_parent(parent_pid: int) -> None:
    """Never outlive fitcheck: the kernel kills this process when the parent dies (Linux), and a watch
    thread does it everywhere (the parent's pid changes when it is gone)."""
    import os
    import signal
    import threading

    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch():
        while True:
            time.sleep(0.2)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


_REPACK = {"on": True}
_SEQS = {"n": 1}


def _patch_context(C) -> None:
    # a batched-decode job needs n_seq_max sequences in one unified cache (llama-server's -np with --kv-unified);
    # Llama() sets n_seq_max only for embeddings, so the defaults it starts from are patched per job
    orig = C.llama_context_default_params

    def params():
        p = orig()
        if _SEQS["n"] > 1:
            p.n_seq_max = _SEQS["n"]
            p.kv_unified = True
        return p

    C.llama_context_default_params = params


def _patch_repack(C) -> None:
    # llama.cpp's repacked (AMX) weight buffers crash on some CPUs; Llama() has no argument for this model
    # parameter, so the defaults it starts from are patched to follow each job's setting
    orig = C.llama_model_default_params

    def params():
        p = orig()
        if not _REPACK["on"]:
            p.use_extra_bufts = False
        return p

    C.llama_model_default_params = params


def _log_to(path) -> None:
    """llama.cpp writes to fd 2: point it at this job's log file."""
    import os

    if path:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 2)
        os.close(fd)


def _reset_peak() -> None:
    """Start this job's peak RSS from now (VmHWM is per process; a session runs several jobs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _batched(llm, C, ctx, n_seq: int, depth: int, n_gen: int, tokens) -> float:
    """Seconds for n_gen decode steps of n_seq sequences at once (one llama_batch of n_seq tokens a step), each
    sequence `depth` tokens in (sequence 0 filled, its cells shared with the others: llama_memory_seq_cp)."""
    llm.reset()
    mem = C.llama_get_memory(ctx)
    C.llama_memory_clear(mem, True)
    llm.eval(tokens(depth))
    for i in range(1, n_seq):
        C.llama_memory_seq_cp(mem, 0, i, -1, -1)
    batch = C.llama_batch_init(n_seq, 0, n_seq)
    try:
        t = time.perf_counter()
        for step in range(n_gen):
            batch.n_tokens = n_seq
            for i, tok in enumerate(tokens(n_seq)):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, depth + step, 1, 1
                batch.seq_id[i][0] = i
            if C.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed on a batch of sequences")
        C.llama_synchronize(ctx)
        return time.perf_counter() - t
    finally:
        C.llama_batch_free(batch)


def main() -> None:
    first = True
    for line in sys.stdin:
        if not line.strip():
            continue
        cfg = json.loads(line)
        if first and cfg.get("parent_pid"):
            _die_with_parent(cfg["parent_pid"])
        _log_to(cfg.get("log"))
        if first:
            import llama_cpp.llama_cpp as C

            _patch_repack(C)
            _patch_context(C)
            first = False
        _reset_peak()
        try:
            out = run_job(cfg)
        except Exception as e:  # a Python-level failure is this job's error; the session goes on
            out = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(out))
        sys.stdout.flush()


def run_job(cfg: dict) -> dict:
    import llama_cpp
    import llama_cpp.llama_cpp as C

    _REPACK["on"] = bool(cfg["use_extra_bufts"])
    _SEQS["n"] = int(cfg.get("n_parallel") or 1)
    kwargs = dict(
        n_ctx=cfg["n_ctx"], n_batch=cfg["n_batch"], n_ubatch=cfg["n_ubatch"],
        n_threads=cfg["n_threads"], n_threads_batch=cfg["n_threads"],
        n_gpu_layers=cfg["n_gpu_layers"], flash_attn=cfg["flash_attn"],
        use_mmap=cfg["use_mmap"], verbose=True, seed=1,
    )
    for k in ("type_k", "type_v", "swa_full"):
        kwargs[k] = cfg[k]
    rss0 = _current_rss_bytes()
    t = time.perf_counter()
    try:
        llm = llama_cpp.Llama(cfg["model"], **kwargs)
    except Exception as e:  # llama.cpp refuses the file: report, do not crash
        return {"error": f"llama.cpp could not load the model: {e}"}
    load_s = time.perf_counter() - t
    rss_loaded = _current_rss_bytes()
    ctx = llm.ctx
    n_vocab = llm.n_vocab()
    rng = random.Random(0)

    def tokens(n):
        return [rng.randrange(min(n_vocab - 1, 3), n_vocab) for _ in range(n)]

    def pp(n):
        llm.reset()
        toks = tokens(n)
        t = time.perf_counter()
        llm.eval(toks)
        C.llama_synchronize(ctx)
        return time.perf_counter() - t

    def tg(n, depth=0):
        llm.reset()
        if depth:
            llm.eval(tokens(depth))
        toks = tokens(n)
        t = time.perf_counter()
        for tok in toks:
            llm.eval([tok])
        C.llama_synchronize(ctx)
        return time.perf_counter() - t

    # warm-up as llama-bench does: one short prompt and a few generated tokens
    if cfg["n_prompt"]:
        pp(min(cfg["n_prompt"], 32))
    if cfg["n_gen"]:
        tg(4)
    if _SEQS["n"] > 1:  # batched decode: every sequence filled to the depth, then n_gen steps of one token each
        pp_s, tg_s = [], [_batched(llm, C, ctx, _SEQS["n"], cfg.get("depth") or 1, cfg["n_gen"], tokens)
                          for _ in range(cfg["reps"])]
    elif cfg.get("depth"):  # llama-bench -d: the cache filled (untimed), then the prompt and the generation on top
        pp_s, tg_s = [], []
        for _ in range(cfg["reps"]):
            llm.reset()
            llm.eval(tokens(cfg["depth"]))
            if cfg["n_prompt"]:
                t = time.perf_counter()
                llm.eval(tokens(cfg["n_prompt"]))
                C.llama_synchronize(ctx)
                pp_s.append(time.perf_counter() - t)
            if cfg["n_gen"]:
                t = time.perf_counter()
                for tok in tokens(cfg["n_gen"]):
                    llm.eval([tok])
                C.llama_synchronize(ctx)
                tg_s.append(time.perf_counter() - t)
    else:
        pp_s = [pp(cfg["n_prompt"]) for _ in range(cfg["reps"])] if cfg["n_prompt"] else []
        tg_s = [tg(cfg["n_gen"], cfg.get("tg_depth", 0)) for _ in range(cfg["reps"])] if cfg["n_gen"] else []
    out = {
        "load_s": load_s,
        "pp_s": pp_s,
        "tg_s": tg_s,
        "n_vocab": n_vocab,
        "rss_before_load_bytes": rss0,
        "rss_after_load_bytes": rss_loaded,
        "rss_end_bytes": _current_rss_bytes(),
        "peak_rss_bytes": _peak_rss_bytes(),
        "system_info": C.llama_print_system_info().decode(errors="replace").strip(),
        "llama_cpp_python": llama_cpp.__version__,
        "n_threads": cfg["n_threads"],
    }
    llm.close()  # the next job's model loads into a clean process
    return out


if __name__ == "__main__":
    main()
