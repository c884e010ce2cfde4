"""Runtime: does llama-cpp-python import, which version, and what llama.cpp was built with.

Checked in a child process: loading llama.cpp's native library can crash the
interpreter, and a crash here must not take the whole profile down.
"""

from __future__ import annotations

import json
import subprocess
import sys

from ._util import run_main, unavailable

CHILD = r"""
import json
import llama_cpp
import llama_cpp.llama_cpp as C
info = C.llama_print_system_info().decode(errors="replace")
print(json.dumps({
    "version": llama_cpp.__version__,
    "system_info": info,
    "gpu_offload": bool(C.llama_supports_gpu_offload()),
    "mmap": bool(C.llama_supports_mmap()),
    "mlock": bool(C.llama_supports_mlock()),
    "max_devices": int(C.llama_max_devices()),
}))
"""


def parse_system_info(text: str) -> dict[str, dict[str, str]]:
    """'CPU : SSE3 = 1 | AVX = 1 | Metal : EMBED_LIBRARY = 1 |' -> {'CPU': {'SSE3': '1', ...}, ...}."""
    out: dict[str, dict[str, str]] = {}
    backend = "general"
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        if " : " in part:  # "CPU : SSE3 = 1" starts a new backend section
            backend, part = (x.strip() for x in part.split(" : ", 1))
        if "=" in part:
            k, v = (x.strip() for x in part.split("=", 1))
            out.setdefault(backend, {})[k] = v
        else:
            out.setdefault(backend, {})[part] = "1"
    return out


def probe(quick: bool = False) -> dict:
    try:
        r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return unavailable("importing llama_cpp took over 120 s")
    if r.returncode != 0:
        if r.returncode < 0:
            return unavailable(f"importing llama_cpp killed the process (signal {-r.returncode})")
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return unavailable(f"llama-cpp-python does not import: {last}")
    d = json.loads(r.stdout.strip().splitlines()[-1])
    features = parse_system_info(d["system_info"])
    backends = sorted(k for k in features if k != "general")
    cpu = features.get("CPU", {})
    return {
        "status": "ok",
        "llama_cpp_python": d["version"],
        "backends": backends,
        "gpu_offload": d["gpu_offload"],
        "amx": cpu.get("AMX_INT8") == "1",
        "features": features,
        "system_info": d["system_info"].strip(),
        "mmap": d["mmap"],
        "mlock": d["mlock"],
    }


if __name__ == "__main__":
    run_main(probe)
