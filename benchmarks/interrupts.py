"""Time from a signal to exit, per command and signal, with two busy loops pinned on the cores beside it.

Each command runs as a user runs it (`python -m fitcheck ...`, its own FITCHECK_HOME and cache) and gets SIGINT
1.5 s in, SIGHUP 3 s in (the probes' own work), or SIGTERM once a llama.cpp child is running (at most 20 s in). Printed:
seconds from the signal to exit, the exit code and last stderr line, whether a llama.cpp child (or an
rpc-server/llama-bench it started) is alive 2 s later, temp files left, and whether the saved profile changed.
Target (issue 29): every exit within 2 s, nothing alive, nothing left, the profile as it was.

    python benchmarks/interrupts.py [--quiet]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

MARKERS = ("fitcheck.calibration._llama_child", "rpc-server", "llama-bench")


def ours_alive(since: float) -> list[str]:
    out = []
    for p in psutil.process_iter(["cmdline", "create_time"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if p.info["create_time"] >= since - 1 and any(m in cmd for m in MARKERS):
                out.append(cmd[:80])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return out


def busy_loops() -> list[subprocess.Popen]:
    return [subprocess.Popen(["taskset", "-c", str(c), "sh", "-c", "while :; do :; done"]) for c in range(os.cpu_count() or 1)]


def temp_left(*folders: Path) -> list[str]:
    found = []
    for f in folders:
        found += [str(p) for p in f.rglob("*") if ".tmp" in p.name or p.name.startswith(".profile-")]
    found += [str(p) for p in Path(tempfile.gettempdir()).glob("fitcheck-llama-*.log")]
    return found


AT = {signal.SIGINT: 1.5, signal.SIGHUP: 3.0, signal.SIGTERM: None}  # None: when a llama.cpp child runs


def one(cmd: list[str], sig: signal.Signals, home: Path, cache: Path) -> dict:
    before = (home / "profile.json").read_text() if (home / "profile.json").exists() else None
    env = {**os.environ, "FITCHECK_HOME": str(home), "FITCHECK_CACHE": str(cache)}
    t_start = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "fitcheck", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    if AT[sig] is not None:
        time.sleep(AT[sig])
    else:
        end = time.monotonic() + 20
        while time.monotonic() < end and not ours_alive(t_start) and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.3)  # inside the run
    if proc.poll() is not None:
        return {"exit_s": None, "note": f"ended before the signal (rc {proc.returncode})"}
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    took = time.monotonic() - t0
    time.sleep(2)
    alive = ours_alive(t_start)
    for p in psutil.process_iter(["cmdline", "create_time"]):  # leave the next case a clean machine
        try:
            if p.info["create_time"] >= t_start - 1 and any(m in " ".join(p.info["cmdline"] or []) for m in MARKERS):
                p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    after_text = (home / "profile.json").read_text() if (home / "profile.json").exists() else None
    err = proc.stderr.read().strip().splitlines()
    return {"exit_s": took, "rc": proc.returncode, "last": err[-1] if err else "", "alive": alive,
            "left": temp_left(home, cache), "profile_same": after_text == before}


def rpc_server() -> tuple[subprocess.Popen, int] | None:
    """A ggml-rpc-server on 127.0.0.1 when fitcheck's RPC tools are built (`calibrate --rpc` builds them)."""
    import socket

    from fitcheck.calibration.rpc import tools_dir

    exe = tools_dir() / "bin" / "ggml-rpc-server"
    if not exe.exists():
        print("(no RPC tools built: the split calibration is not timed; `fitcheck calibrate --rpc` builds them)")
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port), "-t", "1"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1.0)
    return p, port


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quiet", action="store_true", help="no busy loops")
    args = ap.parse_args()
    loops = [] if args.quiet else busy_loops()
    server = None
    bad = 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            probed, cache = tmp / "probed", tmp / "cache"
            env = {**os.environ, "FITCHECK_HOME": str(probed), "FITCHECK_CACHE": str(cache)}
            subprocess.run([sys.executable, "-m", "fitcheck", "probe", "--quick"], env=env, capture_output=True, check=True)
            server = rpc_server()
            cases = [("calibrate --quick", ["calibrate", "--quick"], True),
                     ("probe --quick", ["probe", "--quick"], True),
                     ("main job, no profile", [], False),
                     ("report, no profile", ["report", "--out", str(tmp / "r.html")], False)]
            if server:  # the split calibration: a short real llama-bench run over a local rpc-server
                cases.append(("calibrate --rpc", ["calibrate", "--rpc", f"127.0.0.1:{server[1]}"], True))
            print(f"{'load' if loops else 'quiet'}: command | signal | s to exit | rc | llama.cpp alive 2 s later | temp files left | profile intact | last line")
            for name, cmd, with_profile in cases:
                for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    home = tmp / f"home-{len(name)}-{sig.name}"
                    shutil.rmtree(home, ignore_errors=True)
                    home.mkdir()
                    if with_profile:
                        shutil.copy(probed / "profile.json", home / "profile.json")
                    r = one(cmd, sig, home, cache)
                    if r["exit_s"] is None:
                        print(f"{name} | {sig.name} | - | {r['note']}")
                        continue
                    ok = (r["exit_s"] <= 2.0 and not r["alive"] and not r["left"] and r["profile_same"]
                          and r["rc"] == 128 + sig)
                    bad += not ok
                    print(f"{name} | {sig.name} | {r['exit_s']:.2f} | {r['rc']} | {len(r['alive'])} | {len(r['left'])} | "
                          f"{r['profile_same']} | {r['last'][:70]} {'' if ok else ' <- MISS'}")
    finally:
        for p in loops + ([server[0]] if server else []):
            p.kill()
    print(f"{bad} case(s) missed the target")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
