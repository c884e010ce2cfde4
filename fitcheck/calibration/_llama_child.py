"""Child process for real llama.cpp runs (see llama_run.py): load, warm up, pp and tg.

Reads its settings as JSON on stdin and prints one JSON line last on stdout;
llama.cpp's own log goes to stderr, where the parent reads buffer sizes.
A native crash kills only this process.
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


def main() -> None:
    cfg = json.loads(sys.stdin.read())
    if cfg.get("parent_pid"):
        _die_with_parent(cfg["parent_pid"])
    import llama_cpp
    import llama_cpp.llama_cpp as C

    if not cfg["use_extra_bufts"]:
        # llama.cpp's repacked (AMX) weight buffers crash on some CPUs; Llama() has no
        # argument for this model parameter, so patch the defaults it starts from.
        orig = C.llama_model_default_params

        def params():
            p = orig()
            p.use_extra_bufts = False
            return p

        C.llama_model_default_params = params
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
        print(json.dumps({"error": f"llama.cpp could not load the model: {e}"}))
        sys.exit(3)
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
    pp_s = [pp(cfg["n_prompt"]) for _ in range(cfg["reps"])] if cfg["n_prompt"] else []
    tg_s = [tg(cfg["n_gen"], cfg.get("tg_depth", 0)) for _ in range(cfg["reps"])] if cfg["n_gen"] else []
    print(json.dumps({
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
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
