"""The folder layout is the pipeline: nothing imports upward, probes and device data know no logic."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# lower number = lower layer; a module may import its own layer and those below
LAYERS = {
    "fitcheck.errors": 0, "fitcheck.paths": 0, "fitcheck.jsonio": 0, "fitcheck.text": 0, "fitcheck.interrupts": 0,
    "fitcheck.model": 1,
    "fitcheck.estimator": 2,
    "fitcheck.device": 3,
    "fitcheck.calibration": 4,
    "fitcheck.answer": 5, "fitcheck.advise": 5, "fitcheck.estimate": 5, "fitcheck.forecast": 5, "fitcheck.scan": 5,
    "fitcheck.backtest": 5, "fitcheck.runtimes": 5, "fitcheck.refit": 5, "fitcheck.split": 5, "fitcheck.split_backtest": 5, "fitcheck.serve": 5,
    "fitcheck.views": 6,
    "fitcheck.cli": 7, "fitcheck.__main__": 7,
    "fitcheck": 0,  # the package itself: __version__ and the error names

}


def layer(module: str) -> int | None:
    best = None
    for prefix, n in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, n)
    return best[1] if best else None


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0 or path.parts[-2] in ("probes", "device_db"), f"{path}: relative import"
            out += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return out


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def test_nothing_in_fitcheck_imports_upward():
    bad = []
    for path in sorted((ROOT / "fitcheck").rglob("*.py")):
        me = layer(module_name(path))
        assert me is not None, f"{path} is in no layer"
        for target in imports(path):
            other = layer(target)
            if other is not None and other > me:
                bad.append(f"{module_name(path)} (layer {me}) imports {target} (layer {other})")
    assert not bad, "\n".join(sorted(set(bad)))


def test_probes_and_device_data_know_no_fitcheck_logic():
    """They may use the base layer (where files live, the error family) and nothing above it."""
    for folder in ("probes", "device_db"):
        for path in sorted((ROOT / folder).glob("*.py")):
            used = [m for m in imports(path) if m.startswith("fitcheck") and layer(m) != 0]
            assert not used, f"{path} imports {used}"


def test_the_estimator_does_no_io():
    banned = ("open(", "print(", "subprocess", "os.environ", "Path(", "requests", "socket")
    for path in sorted((ROOT / "fitcheck" / "estimator").glob("*.py")):
        text = path.read_text()
        for word in banned:
            assert word not in text, f"{path} uses {word}"
