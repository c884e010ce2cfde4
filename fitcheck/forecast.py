"""`fitcheck forecast`: when does a class of devices first run a model size at a quantization?

For each device of the class (from device_db, its best configuration: largest
RAM option, largest GPU variant of a chip) the memory model gives the verdict
against the OS's per-app usable memory and the speed model gives decode t/s.
Log-linear trends against release year (scipy) are fitted to bandwidth, RAM,
usable memory and the predicted decode rate; the forecast year is where both
the usable-memory trend clears the model's need (with the 'fits' margin) and
the decode trend reaches the target. Its interval comes from a bootstrap
over the class's devices. The seed's timeline for flagship phones is checked
against the devices themselves: a claim is supported when a device of the
class released by the claimed month runs the size.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from fitcheck.errors import ForecastError, UsageError
from fitcheck.estimator.fit import TIGHT_MARGIN
from fitcheck.estimator.settings import RuntimeSettings

HORIZON_YEAR = 2050
MIN_DEVICES = 3
MIN_YEARS = 2
N_BOOT = 2000
INTERVAL = (5, 95)  # percentiles of the bootstrap crossing years
DEFAULT_TARGET_TPS = 5.0  # a readable chat pace; the seed calls 0.71 t/s "almost unusable"




def _chip_base(name: str) -> str:
    return name.split(" (")[0]


@dataclass(frozen=True)
class DeviceClass:
    name: str
    description: str
    select: Callable[[Any], bool]


def _apple_m(tier: str) -> Callable[[Any], bool]:
    pat = re.compile(r"^Apple M\d+$" if tier == "base" else rf"^Apple M\d+ {tier}$")
    return lambda d: d.kind == "chip" and d.family == "Apple M" and bool(pat.match(_chip_base(d.name)))


# a flagship's SoC: the top tier of each maker (Snapdragon 8xx / 8 Gen / 8 Elite, Dimensity 8000/9000, Exynos 2x00
# and 990, Tensor, Kirin 9000, any Apple A); mid-range and budget phones are in the database but not these classes
_FLAGSHIP_SOC = re.compile(r"snapdragon-(8s?|8\d\d)(-|$)|dimensity-[89]\d{3}|exynos-(2\d{3}|990)|tensor|kirin-9\d{2,3}|apple-a")


def _flagship(d) -> bool:
    return d.kind == "phone" and (not d.chip or bool(_FLAGSHIP_SOC.search(d.chip)))


CLASSES: dict[str, DeviceClass] = {c.name: c for c in (
    DeviceClass("phone-flagship", "flagship phones: iPhone, Galaxy S, Pixel, Xiaomi, OnePlus (phones in device_db)",
                _flagship),
    DeviceClass("iphone", "iPhones (iOS per-app memory limit)", lambda d: _flagship(d) and d.os == "iOS"),
    DeviceClass("android-flagship", "Android flagship phones", lambda d: _flagship(d) and d.os == "Android"),
    DeviceClass("apple-m-base", "Apple M base chips (M1, M2, M3 ...) under macOS", _apple_m("base")),
    DeviceClass("apple-m-pro", "Apple M Pro chips under macOS", _apple_m("Pro")),
    DeviceClass("apple-m-max", "Apple M Max chips under macOS", _apple_m("Max")),
    DeviceClass("apple-m-ultra", "Apple M Ultra chips under macOS", _apple_m("Ultra")),
    DeviceClass("sbc", "single-board computers: Raspberry Pi and Jetson boards", lambda d: d.kind in ("sbc", "board")),
    DeviceClass("nvidia-consumer-gpu", "NVIDIA GeForce cards (VRAM only)", lambda d: d.family == "NVIDIA GPU"),
    DeviceClass("nvidia-datacenter-gpu", "NVIDIA data-centre cards (VRAM only)", lambda d: d.family == "NVIDIA DC"),
)}

def class_named(text: str) -> str | None:
    """A class as people write it: words in any order, plurals, a few synonyms ("flagship-phones", "iPhones",
    "GeForce", "Raspberry Pi"); None when no class or more than one has those words."""
    synonyms = {"geforce": "consumer", "rtx": "consumer", "datacentre": "datacenter", "data": "datacenter",
                "pi": "sbc", "raspberry": "sbc", "jetson": "sbc", "boards": "sbc", "board": "sbc", "apple": "",
                "m": "", "gpus": "gpu", "cards": "gpu", "card": "gpu", "phones": "phone", "iphones": "iphone",
                "nvidia": "nvidia", "centre": "", "center": "", "mac": ""}
    words = {synonyms.get(w, w.rstrip("s") if len(w) > 3 else w) for w in re.findall(r"[a-z0-9]+", text.lower())} - {""}
    hits = [n for n in CLASSES if words and words <= set(n.split("-")) | {"m"}]
    return hits[0] if len(hits) == 1 else None


# the seed (user's source text, 2024-03): what flagship phones run "stably", and when
SEED_CLAIMS = (
    ("1.8b", "2024-03", "1.8B runs stably on flagship phones in 2024-03"),
    ("4b", "2024-09", "4B runs on new phones by 2024-09"),
    ("7b", "2025-03", "7B runs stably by 2025-03"),
)


def parse_month(text: str, what: str = "date") -> float:
    """'2024-03' or '2024' -> fractional year at the END of that month/year (releases up to it count)."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2}))?", text.strip())
    if not m or not 1990 <= int(m.group(1)) <= HORIZON_YEAR or (m.group(2) and not 1 <= int(m.group(2)) <= 12):
        raise UsageError(f"{what} must be YYYY or YYYY-MM between 1990 and {HORIZON_YEAR}, got {text!r}")
    return int(m.group(1)) + (int(m.group(2)) if m.group(2) else 12) / 12


def month_of(t: float) -> str:
    """Fractional year -> 'YYYY-MM'."""
    y = math.floor(t)
    m = min(int((t - y) * 12) + 1, 12)
    return f"{y}-{m:02d}"


@dataclass(frozen=True)
class Trend:
    """log(value) = intercept + slope * year (natural log)."""

    quantity: str
    unit: str
    n: int
    slope_per_year: float
    intercept: float
    r2: float | None
    doubling_years: float | None

    def at(self, t: float) -> float:
        return math.exp(self.intercept + self.slope_per_year * t)

    def year_reaching(self, value: float) -> float | None:
        """First year the trend reaches `value` (None if it never does going forward)."""
        if self.slope_per_year <= 0:
            return None
        return (math.log(value) - self.intercept) / self.slope_per_year


def fit_trend(quantity: str, unit: str, years: list[float], values: list[float]) -> Trend:
    from scipy import stats

    ly = [math.log(v) for v in values]
    r = stats.linregress(years, ly)
    slope = float(r.slope)
    r2 = float(r.rvalue ** 2) if math.isfinite(r.rvalue) else None  # undefined when every value is equal
    return Trend(quantity, unit, len(years), slope, float(r.intercept), r2,
                 math.log(2) / slope if slope > 0 else None)


@dataclass
class DevicePoint:
    id: str
    name: str
    release: str
    release_year: float
    os: str
    ram_gb: int
    usable_bytes: int
    bw_gbps: float | None
    needed_bytes: int
    verdict: str
    decode_tps: float | None
    runs: bool
    reason: str
    source: str
    verification: str


@dataclass
class ClaimCheck:
    claim: str
    size: str
    by: str
    supported: bool
    first_runner: str | None
    deciding: list[dict]
    by_platform: dict[str, str]
    trend_year: str | None


@dataclass
class ForecastResult:
    device_class: str
    description: str
    model: str
    model_name: str
    quant: str
    target_tps: float
    n_ctx: int
    as_of: str | None
    needed_bytes: int
    devices: list[DevicePoint]
    skipped: list[dict]
    trends: dict[str, Trend]
    memory_year: float | None
    speed_year: float | None
    year: float | None
    interval: tuple[float, float | None] | None  # upper None: some resamples never cross before the horizon
    first_observed: DevicePoint | None
    claims: list[ClaimCheck]
    basis: dict[str, Any]
    bands: dict[str, Any] = field(default_factory=dict, repr=False)  # for plots; not in JSON

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "bands"}
        d["year_month"] = _trend_month(self.year, self.devices)
        d["interval_months"] = [month_of(x) if x is not None else f"after {HORIZON_YEAR}" for x in self.interval] \
            if self.interval else None
        return d


def _cores(d) -> int:
    return int(d.gpu_cores) if str(d.gpu_cores).isdigit() else 0


def _best_configs(pool: list, config: str) -> list[tuple[Any, int]]:
    """One row per chip (largest or smallest GPU variant) with its largest or smallest RAM option."""
    pick = max if config == "best" else min
    groups: dict[str, list] = {}
    for d in pool:
        groups.setdefault(_chip_base(d.name) if d.kind == "chip" else d.id, []).append(d)
    chosen = [pick(g, key=_cores) for g in groups.values()]
    return [(d, pick(d.ram_options_gb) if d.ram_options_gb else 0) for d in chosen]


def _evaluate(dev, ram_gb: int, spec, s: RuntimeSettings, target_tps: float) -> DevicePoint:
    from fitcheck.device.resolve import device_target
    from fitcheck.estimator.evaluate import evaluate

    # each device on the fastest llama.cpp backend it runs (an Android phone's OpenCL or Hexagon, a Mac's Metal)
    best = None
    for b in [b for b in dev.backends if b not in ("mlx", "mlc")] or [None]:
        target = device_target(dev, ram_gb, overrides=(None, None, b, None))
        if best is not None and b != "cpu" and target.speed is not None and not target.speed.peak_tflops:
            continue  # an accelerator without a FLOPS figure has a bandwidth-only rate: an upper bound, not a pick
        ev = evaluate(spec, s, target)
        rate = ev.in_memory_speed.decode_tps if ev.in_memory_speed else 0.0
        if best is None or rate > best[0]:
            best = (rate, target, ev)
    _, target, ev = best
    needed, usable, verdict = ev.fit.needed_bytes, target.usable_bytes, ev.fit.verdict
    # the trend uses every device's in-memory rate, fitting or not
    decode = ev.in_memory_speed.decode_tps if ev.in_memory_speed else None
    fits = verdict == "fits"
    fast = decode is not None and decode >= target_tps
    if fits and fast:
        reason = f"fits ({needed / 1e9:.1f} of {usable / 1e9:.1f} GB), ~{decode:.1f} t/s"
    elif verdict == "pages" and ev.speed is not None:
        reason = (f"does not fit ({needed / 1e9:.1f} GB, {usable / 1e9:.1f} GB usable): pages from storage at "
                  f"~{ev.speed.decode_tps:.2f} t/s")
    elif not fits:
        reason = f"{verdict.replace('_', ' ')}: needs {needed / 1e9:.1f} GB, {usable / 1e9:.1f} GB usable"
    elif decode is None:
        reason = "fits, but no bandwidth in the database for a speed"
    else:
        reason = f"fits, but ~{decode:.1f} t/s is under the {target_tps:g} t/s target"
    return DevicePoint(dev.id, dev.name, dev.release or str(dev.year), dev.release_year, target.basis["os"], ram_gb, usable,
                       dev.bw_gbps, needed, verdict, decode, fits and fast, reason, dev.source, dev.verification)


def _fit_xy(xs, ys):
    """Least-squares slope/intercept of log(ys) on xs (numpy; the bootstrap's inner loop)."""
    import numpy as np

    x, y = np.asarray(xs), np.log(np.asarray(ys))
    xm = x.mean()
    sxx = ((x - xm) ** 2).sum()
    if sxx == 0:
        return None
    b = ((x - xm) * (y - y.mean())).sum() / sxx
    return b, y.mean() - b * xm


def _bootstrap(mem_pts, spd_pts, need: float, target: float, grid) -> tuple[list[float], dict]:
    """Crossing years and trend bands over resampled devices (fixed seed: the same data gives the same interval)."""
    import numpy as np

    rng = np.random.default_rng(12345)
    years, mem_curves, spd_curves = [], [], []
    for _ in range(N_BOOT):
        fm = _fit_xy(*zip(*[mem_pts[i] for i in rng.integers(0, len(mem_pts), len(mem_pts))]))
        fs = _fit_xy(*zip(*[spd_pts[i] for i in rng.integers(0, len(spd_pts), len(spd_pts))]))
        if fm is None or fs is None:
            continue
        mem_curves.append(np.exp(fm[1] + fm[0] * grid))
        spd_curves.append(np.exp(fs[1] + fs[0] * grid))
        tm = (math.log(need) - fm[1]) / fm[0] if fm[0] > 0 else math.inf
        ts = (math.log(target) - fs[1]) / fs[0] if fs[0] > 0 else math.inf
        years.append(max(tm, ts))
    lo, hi = INTERVAL
    bands = {"grid": grid, "memory": np.percentile(mem_curves, [lo, hi], axis=0),
             "decode": np.percentile(spd_curves, [lo, hi], axis=0)}
    return years, bands


def _by_platform(released: list[DevicePoint]) -> dict[str, str]:
    """Per OS: the first device released in time that runs the size, or how many were released and none did."""
    out = {}
    for os_name in sorted({p.os for p in released}):
        mine = [p for p in released if p.os == os_name]
        first = next((p for p in mine if p.runs), None)
        out[os_name] = f"{first.name} ({first.release})" if first else f"none of {len(mine)} released"
    return out


def _trend_month(year: float | None, pts: list[DevicePoint]) -> str | None:
    if year is None:
        return None
    first = min(pts, key=lambda p: p.release_year)
    return f"before the first device ({first.release})" if year < first.release_year else month_of(year)


def _claims(evaluate: Callable[[str], tuple[list[DevicePoint], float | None]]) -> list[ClaimCheck]:
    """Each seed claim against the devices released by its month; `evaluate(size)` gives points and trend year."""
    out = []
    for size, by, text in SEED_CLAIMS:
        pts, trend_year = evaluate(size)
        cutoff = parse_month(by)
        released = sorted((p for p in pts if p.release_year <= cutoff), key=lambda p: p.release_year)
        runners = [p for p in released if p.runs]
        if runners:
            deciding = runners[:3]
        else:  # the nearest misses: most headroom first, then speed
            deciding = sorted(released, key=lambda p: (p.usable_bytes - p.needed_bytes, p.decode_tps or 0), reverse=True)[:3]
        out.append(ClaimCheck(text, size, by, bool(runners), runners[0].name if runners else None,
                              [{"name": p.name, "release": p.release, "ram_gb": p.ram_gb, "runs": p.runs, "reason": p.reason}
                               for p in deciding],
                              _by_platform(released),
                              _trend_month(trend_year, pts)))
    return out


def _basis(cls: DeviceClass, config: str, s: RuntimeSettings) -> dict[str, Any]:
    return {
        "class": cls.description,
        "configuration": "each device's largest RAM option and largest GPU variant" if config == "best" else
                         "each device's smallest RAM option and smallest GPU variant",
        "memory": "usable per app by OS rule (device_db/os_memory.csv); verdict on llama.cpp's reserved total",
        "speed": "fitcheck's speed model per device (device_db/speed_params.json), each device on the fastest "
                 "llama.cpp backend it runs",
        "trend": "log-linear least squares on release year (scipy.stats.linregress)",
        "year": "first year the usable-memory trend clears the need with the 10 % margin and the decode trend reaches the target",
        "interval": f"{INTERVAL[0]}th-{INTERVAL[1]}th percentile over {N_BOOT} bootstrap resamples of the class's devices",
        "settings": {"n_ctx": s.n_ctx, "runtime": s.runtime, "swa_full": s.swa_full, "flash_attn": s.flash_attn},
        "claims": "a claim is supported when a device of the class released by the claimed month runs the size "
                  "(fits and reaches the target); the seed's own date granularity is the month",
    }


@dataclass
class ClassTrends:
    """One class's devices evaluated for one model, and its trends (no interval, no claims)."""

    entry: Any
    quant: str
    needed: int
    devices: list[DevicePoint]
    skipped: list[dict]
    trends: dict[str, Trend]
    t_mem: float | None
    t_speed: float | None
    year: float | None


def class_trends(device_class: str, size: str = "7b", quant: str = "Q4_K_M", target_tps: float = DEFAULT_TARGET_TPS,
                 settings: RuntimeSettings | None = None, as_of: str | None = None, config: str = "best") -> ClassTrends:
    """The class's devices (released by `as_of`) evaluated for one model, and log-linear trends over them."""
    import device_db

    from fitcheck.estimator.memory import estimate_memory
    from fitcheck.model.catalog import resolve, spec_from_catalog

    from fitcheck.model.quants import get_format

    cls = CLASSES.get(device_class) or CLASSES.get(class_named(device_class) or "")
    if cls is None:
        raise UsageError(f"unknown device class {device_class!r}; classes: {', '.join(CLASSES)}")
    if not (math.isfinite(target_tps) and 0 < target_tps <= 10_000):
        raise UsageError(f"--target-tps must be a speed between 0 and 10000 tokens/s, got {target_tps:g}")
    if config not in ("best", "base"):
        raise UsageError(f"--config must be 'best' or 'base', got {config!r}")
    s = settings or RuntimeSettings()
    cutoff = parse_month(as_of, "--as-of") if as_of else None
    entry, _ = resolve(size)
    quant = get_format(quant).name
    spec = spec_from_catalog(entry, quant)
    needed = estimate_memory(spec, s).total_bytes
    pool = [d for d in device_db.devices().values() if cls.select(d)]
    points, skipped = [], []
    for dev, ram_gb in _best_configs(pool, config):
        if cutoff is not None and (dev.release_year or 0) > cutoff:
            continue
        if not ram_gb or dev.release_year is None:
            skipped.append({"name": dev.name, "reason": "no RAM size" if not ram_gb else "no release date"})
            continue
        points.append(_evaluate(dev, ram_gb, spec, s, target_tps))
    points.sort(key=lambda p: (p.release_year, p.name))
    with_bw = [p for p in points if p.decode_tps]
    when = f" released by {as_of}" if as_of else ""
    for what, pts in (("RAM size and release date", points), ("memory bandwidth", with_bw)):
        n_years = len({math.floor(p.release_year) for p in pts})
        if len(pts) < MIN_DEVICES or n_years < MIN_YEARS:
            names = ", ".join(p.name for p in pts) or "none"
            raise ForecastError(
                f"class {cls.name} has {len(pts)} device(s) with {what}{when} from {n_years} release year(s) "
                f"({names}); a trend needs at least {MIN_DEVICES} devices from at least {MIN_YEARS} years")
    t = [p.release_year for p in points]
    trends = {
        "ram": fit_trend("RAM", "GB", t, [p.ram_gb for p in points]),
        "usable_memory": fit_trend("usable memory", "GB", t, [p.usable_bytes / 1e9 for p in points]),
        "bandwidth": fit_trend("bandwidth", "GB/s", [p.release_year for p in with_bw], [p.bw_gbps for p in with_bw]),
        "decode": fit_trend(f"decode {entry.id} {quant}", "t/s", [p.release_year for p in with_bw], [p.decode_tps for p in with_bw]),
    }
    t_mem = trends["usable_memory"].year_reaching(needed / 1e9 / (1 - TIGHT_MARGIN))  # 'fits' leaves the margin free
    t_speed = trends["decode"].year_reaching(target_tps)
    year = max(t_mem, t_speed) if t_mem is not None and t_speed is not None else None
    return ClassTrends(entry, quant, needed, points, skipped, trends, t_mem, t_speed,
                  year if year is not None and year <= HORIZON_YEAR else None)


def forecast(device_class: str = "phone-flagship", size: str = "7b", quant: str = "Q4_K_M",
             target_tps: float = DEFAULT_TARGET_TPS, settings: RuntimeSettings | None = None,
             as_of: str | None = None, config: str = "best", with_claims: bool | None = None) -> ForecastResult:
    import numpy as np

    s = settings or RuntimeSettings()
    device_class = device_class if device_class in CLASSES else (class_named(device_class) or device_class)
    c = class_trends(device_class, size, quant, target_tps, s, as_of, config)
    cls, q = CLASSES[device_class], c.quant
    entry, points, trends, year = c.entry, c.devices, c.trends, c.year
    need_gb = c.needed / 1e9 / (1 - TIGHT_MARGIN)
    if year is None:
        mem_at, tps_at = trends["usable_memory"].at(HORIZON_YEAR), trends["decode"].at(HORIZON_YEAR)
        short = (f"usable memory reaches only {mem_at:.1f} of the {need_gb:.1f} GB needed: pick a smaller size or quantization"
                 if mem_at < need_gb else
                 f"decode reaches only {tps_at:.1f} t/s: lower --target-tps or pick a smaller size")
        raise ForecastError(f"the {device_class} trend does not run {entry.id} {q} at {target_tps:g} t/s "
                            f"before {HORIZON_YEAR}; by then {short}")
    first = next((p for p in points if p.runs), None)  # the trend can cross before or after any one device
    t = [p.release_year for p in points]
    with_bw = [p for p in points if p.decode_tps]
    grid = np.linspace(min(t) - 1, max(max(t) + 4, year + 2), 200)
    boot, bands = _bootstrap([(p.release_year, p.usable_bytes / 1e9) for p in points],
                             [(p.release_year, p.decode_tps) for p in with_bw], need_gb, target_tps, grid)
    interval = None
    if boot:  # 'nearest' keeps infinite (never-crossing) resamples from turning into NaN
        lo, hi = (float(x) for x in np.percentile(boot, INTERVAL, method="nearest"))
        interval = (lo, hi if hi <= HORIZON_YEAR else None)
    claims = []
    if with_claims if with_claims is not None else device_class == "phone-flagship":
        from fitcheck.model.catalog import resolve

        def for_size(sz: str):
            if resolve(sz)[0].id == entry.id:  # the model just evaluated
                return points, year
            other = class_trends(device_class, sz, q, target_tps, s, as_of, config)
            return other.devices, other.year
        claims = _claims(for_size)
    return ForecastResult(device_class, cls.description, entry.id, entry.name, q, target_tps, s.n_ctx, as_of, c.needed,
                          points, c.skipped, trends, c.t_mem, c.t_speed, year, interval, first, claims,
                          _basis(cls, config, s), bands)
