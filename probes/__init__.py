"""Probes: each module measures one thing about this device.

Every probe module has `probe(quick: bool = False) -> dict` and runs alone:
`python -m probes.<name>` prints its JSON. A probe that cannot run here returns
{"status": "unavailable", "reason": ...} instead of raising.
"""

PROBES = ("memory", "cpu", "bandwidth", "compute", "accelerators", "disk", "runtime")
