"""The speed model is written once: the class fit evaluates exactly what every estimate does, and refitting the
development data reproduces the shipped parameters."""

from __future__ import annotations

import json

import pytest

from .conftest import run_cli


def test_the_fit_evaluates_what_estimate_speed_does_on_every_row():
    import numpy as np

    from fitcheck.backtest import samples_by_class
    from fitcheck.calibration.class_fit import Features, Layout, OFFLOAD, offload, predict, type_keys, unpack
    from fitcheck.device.device_speed import backend_params
    from fitcheck.refit import dev_rows

    rows = dev_rows()
    for backend in ("opencl", "metal"):  # a phone class that leaves products to the CPU, and a GPU class
        samples = samples_by_class(rows, (backend,))[backend]
        off = offload(backend_params("cpu"), **OFFLOAD.get(backend, {})) if backend in OFFLOAD else offload()
        keys = type_keys(samples, off)
        f = Features(samples, keys, off)
        x0, lo, hi, _ = Layout(len(keys)).start()
        rng = np.random.default_rng(7)
        x = lo + (hi - lo) * rng.uniform(0.2, 0.8, size=len(x0))  # any parameters, not only the fitted ones
        p = unpack(x, keys)
        from dataclasses import replace

        from fitcheck.calibration.class_fit import RULES

        p = replace(p, **{k: getattr(off, k) for k in RULES})
        if not f.fit_slow:
            p.pp_eff.pop("slow")
        fast = f.tps(x)
        slow = np.array([predict(r, p) for r, _, _ in samples])
        assert np.allclose(fast, slow, rtol=1e-9), backend


def test_refit_reproduces_the_shipped_class():
    from fitcheck.device.device_speed import fitted_params

    r = run_cli("refit", "--only", "vulkan", "--json", timeout=300)
    assert r.returncode == 0, r.stderr
    fitted = json.loads(r.stdout)["classes"]["vulkan"]
    shipped = fitted_params()["backends"]["vulkan"]
    assert fitted["in_sample_mape"].keys() == shipped["in_sample_mape"].keys()
    for k, v in shipped["in_sample_mape"].items():
        assert fitted["in_sample_mape"][k] == pytest.approx(v, abs=0.005), k
    for t, v in shipped["flops_per_weight"].items():
        assert fitted["flops_per_weight"][t] == pytest.approx(v, rel=0.02), t
    assert json.loads(r.stdout)["written"] is None  # nothing written without --write


def test_refit_refuses_an_unknown_class_in_one_line():
    r = run_cli("refit", "--only", "cuda,warp-drive")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "warp-drive" in r.stderr
