"""Splits over llama.cpp's RPC backend, predicted against real runs in the same session.

Probes this machine as `fitcheck probe --quick` does (bandwidth, llama.cpp's kernels), starts rpc-servers in network
namespaces behind shaped links (fitcheck.calibration.rpc_lab: tc tbf for the rate, a delaying relay for the round
trip), and runs llama-bench (built from the llama.cpp llama-cpp-python vendors) over splits of a dense and an MoE
synthetic model: this machine's CPU holds some layers, the servers the rest. Every run is predicted by fitcheck's
placement model (fitcheck.estimator.placement) with the link as measured (rate and round trip through the relay,
as iperf and ping would give them), before the run, and compared: decode and
prefill errors, and each device's memory against the buffer sizes llama.cpp reports for it. With --calibrate the
link terms are then fitted on the runs of each profile (fitcheck.calibration.rpc_fit, as `fitcheck calibrate --rpc`
does) and the decode errors printed again. Targets: decode within 20 %, prefill within 30 %, memory within 3 %;
after calibration decode within 10 %.

    python benchmarks/rpc_split.py [--keep DIR] [--calibrate] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

HOST_CPUS, SERVER_CPUS = "0", "1"
LINKS = {"1 Gb/s + 0.3 ms": (1.0, 0.3), "100 Mb/s + 2 ms": (0.1, 2.0), "300 Mb/s + 5 ms": (0.3, 5.0)}


def models(folder: Path):
    from fitcheck.calibration.calibrate import ensure_model
    from fitcheck.calibration.synth import SynthModel, spec_of

    plans = {
        "dense Q4_0": SynthModel(n_layer=12, n_embd=2048, n_head=16, n_head_kv=4, n_ff=5632, n_vocab=32000,
                                 weight_type="Q4_0", seed=61, name="rpc-dense"),
        "MoE 8x2 Q8_0": SynthModel(n_layer=12, n_embd=1024, n_head=8, n_head_kv=4, n_ff=2816, n_vocab=32000,
                                   weight_type="Q8_0", n_expert=8, n_expert_used=2, seed=62, name="rpc-moe",
                                   type_overrides={"attn_output": "F16"}),
    }
    return {label: (ensure_model(m, folder), spec_of(m)) for label, m in plans.items()}


# (label, -ngl, -ts): this machine's CPU keeps the layers below n_layer + 1 - ngl, the servers share the rest (the
# output head counts as one layer)
SPLITS = (("CPU 4 layers, servers 1:1", 9, "1/1"), ("servers only, 3:1", 13, "3/1"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="keep the models in this folder")
    ap.add_argument("--calibrate", action="store_true", help="also fit the link terms per profile and re-predict")
    ap.add_argument("--quick", action="store_true", help="one link profile, the dense model only")
    args = ap.parse_args()
    from fitcheck.calibration.rpc_lab import Lab, available

    why = available()
    if why:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    from fitcheck.calibration.kernels import measure as measure_kernels
    from fitcheck.calibration.rpc import bench, ensure_tools
    from fitcheck.calibration.rpc_fit import Run, fit_links, predict_run
    from fitcheck.device.device_speed import bandwidth_at, kernel_params, kernels_from_profile
    from fitcheck.estimator.speed import DeviceSpeedSpec
    from probes import bandwidth

    ensure_tools(print)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("FITCHECK_HOME", str(folder / "home"))
        # one core each, as separate machines would be: llama-bench on the first, the servers (which run one at a
        # time) on the second, one thread apiece (no thread spins on a core another process needs). The probe runs
        # at that one thread: two vCPUs are often one core's two hyperthreads, so rates do not halve
        bw = bandwidth.probe(quick=True)
        kernels = kernels_from_profile({"bandwidth": bw, "kernels": measure_kernels(1, quick=True)})
        dev = DeviceSpeedSpec("cpu", bandwidth_at(bw, 1), None, kernels=kernels, threads=1)
        kp = kernel_params()[0]
        print(f"this machine: read {dev.bw_gbps:.1f} GB/s and llama.cpp's kernels probed at 1 thread")
        ms = models(folder)
        links = dict(list(LINKS.items())[:1]) if args.quick else LINKS
        chosen = dict(list(ms.items())[:1]) if args.quick else ms
        from fitcheck.calibration.kernels import fit_kernel_factors
        from fitcheck.estimator.speed import estimate_speed

        base = []
        for mlabel, (path, spec) in chosen.items():  # the same model on this machine alone: the device terms' own error
            e = estimate_speed(spec, dev, kp, n_prompt=128, depth=16)
            r = bench(path, [], n_gpu_layers=0, threads=1, cpus=HOST_CPUS)
            base.append((spec, r.prompt_tps, r.generation_tps, 128, 16))
            print(f"{'no split':17} {mlabel:13} {'this CPU alone':31} decode {e.decode_tps:6.1f} / {r.generation_tps:6.1f} "
                  f"{e.decode_tps / r.generation_tps - 1:+6.1%}  prefill {e.prefill_tps:6.1f} / {r.prompt_tps:6.1f} "
                  f"{e.prefill_tps / r.prompt_tps - 1:+6.1%}")
        # what `fitcheck calibrate` gives this machine: the kernel model's factors fitted on the runs without a split
        kp_cal = fit_kernel_factors(base, dev, kp)[0]
        errs: dict[str, list[float]] = {k: [] for k in ("decode", "prefill", "memory", "decode_cal", "prefill_cal",
                                                         "decode_link", "prefill_link")}
        for link_label, (gbit, rtt) in links.items():
            runs = []
            with Lab(2, gbit, rtt, threads=1, cpus=SERVER_CPUS) as lab:
                # the link as a user would give it (--link GBIT/MS): measured like iperf and ping, through the relay
                gbit, rtt = lab.measure_link(0)
                print(f"{link_label}: measured {gbit:.3f} Gbit/s, {rtt:.2f} ms round trip")
                for mlabel, (path, spec) in chosen.items():
                    for slabel, ngl, ts in SPLITS:
                        run = Run(spec, ngl, ts, n_prompt=128, n_gen=32)
                        pred = predict_run(run, dev, kp, gbit, rtt)  # written down before the run
                        r = bench(path, lab.endpoints, n_gpu_layers=ngl, tensor_split=ts, threads=1, cpus=HOST_CPUS)
                        runs.append((run, r))
                        ed, ep = pred.decode_tps / r.generation_tps - 1, pred.prefill_tps / r.prompt_tps - 1
                        cal = predict_run(run, dev, kp_cal, gbit, rtt)
                        errs["decode"].append(abs(ed))
                        errs["prefill"].append(abs(ep))
                        errs["decode_cal"].append(abs(cal.decode_tps / r.generation_tps - 1))
                        errs["prefill_cal"].append(abs(cal.prefill_tps / r.prompt_tps - 1))
                        mem = []
                        for k, ep_name in enumerate(lab.endpoints):
                            got = next((v for d, v in r.buffers.items() if ep_name in d), {})
                            want = pred.memory[k + 1]
                            if got:
                                mem.append((want.weights_bytes + want.kv_bytes + want.compute_bytes) / sum(got.values()) - 1)
                        errs["memory"] += [abs(x) for x in mem]
                        print(f"{link_label:17} {mlabel:13} {slabel:31} decode {pred.decode_tps:6.1f} / "
                              f"{r.generation_tps:6.1f} {ed:+6.1%}  prefill {pred.prefill_tps:6.1f} / {r.prompt_tps:6.1f} "
                              f"{ep:+6.1%}  memory per server " + ", ".join(f"{x:+.1%}" for x in mem)
                              + f"  | device calibrated: decode {cal.decode_tps / r.generation_tps - 1:+6.1%}, prefill "
                              f"{cal.prefill_tps / r.prompt_tps - 1:+6.1%}")
            if args.calibrate:
                link = fit_links([(run, r.prompt_tps, r.generation_tps) for run, r in runs], dev, kp_cal)
                print(f"  calibrate --rpc: link {link.gbit_s:.3f} Gbit/s, {link.rtt_s * 1e3:.2f} ms round trip "
                      f"(given {gbit:g} Gbit/s, {rtt:g} ms)")
                for run, r in runs:
                    p = predict_run(run, dev, kp_cal, link.gbit_s, link.rtt_s * 1e3)
                    errs["decode_link"].append(abs(p.decode_tps / r.generation_tps - 1))
                    errs["prefill_link"].append(abs(p.prefill_tps / r.prompt_tps - 1))
                    print(f"    {run.label():40} decode {p.decode_tps:6.1f} / {r.generation_tps:6.1f} "
                          f"{p.decode_tps / r.generation_tps - 1:+6.1%}  prefill {p.prefill_tps / r.prompt_tps - 1:+6.1%}")

    def line(what, d, p, target_d, target_p):
        return (f"{what}: decode MAPE {statistics.fmean(errs[d]):.1%} (worst {max(errs[d]):.1%}; target {target_d}), "
                f"prefill {statistics.fmean(errs[p]):.1%} (worst {max(errs[p]):.1%}; target {target_p})")

    print(f"\nover {len(errs['decode'])} split runs:")
    print(line("uncalibrated (probe only, link as given)", "decode", "prefill", "20 %", "30 %"))
    print(line("this CPU calibrated on its own runs, link as given", "decode_cal", "prefill_cal", "20 %", "30 %"))
    if errs["decode_link"]:
        print(line("after calibrate --rpc (link fitted per profile)", "decode_link", "prefill_link", "10 %", "-"))
    print(f"memory per server: worst {max(errs['memory'], default=0):.1%} of llama.cpp's own buffer sizes (target 3 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
