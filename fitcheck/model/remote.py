"""Remote GGUF headers: read a model's header over HTTP range requests, never its tensor data.

`https://host/file.gguf` and `hf://org/repo[@revision]/path/file.gguf` are read with
`Range:` requests that grow as gguf_reader's bounded parser asks (1 MiB, then doubling,
at most MAX_HEADER_BYTES), so a header costs a few requests whatever the file's size.
The bytes read are cached under cache_dir()/headers (at most CACHE_MAX_BYTES): a second read
does no network I/O.

Against a hostile or broken server: one deadline for the whole read (every request of every
part; a watchdog closes a socket that trickles, since a socket timeout only bounds one recv),
redirects only to http(s) and never from https down to http, HF_TOKEN only to the exact origin
(scheme, host, port) of the Hub endpoint, split parts bounded and checked against the first.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from fitcheck.errors import GGUFError
from fitcheck.model.gguf_reader import (
    FIRST_READ,
    MAX_HEADER_BYTES,
    SPLIT_NAME,
    GGUFHeader,
    GGUFModel,
    _parse,
    merge_split,
    model_from_header,
)
from fitcheck.paths import cache_dir

TIMEOUT_S = 30.0  # one request's connect and each read
DEADLINE_S = 120.0  # one whole model read: every request of every part
MAX_SPLIT_PARTS = 256  # the largest published splits have tens of parts
MAX_SPLIT_HEADER_BYTES = 256 << 20  # all parts' headers together
CACHE_MAX_BYTES = 512 << 20  # the header cache; the oldest entries go first
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
USER_AGENT = "fitcheck (GGUF header reader)"
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


class RemoteError(GGUFError):
    """A remote GGUF that could not be fetched: an HTTP error, no connection, no range requests."""

    def __init__(self, path, problem: str, status: int | None = None):
        super().__init__(path, problem)
        self.status = status


def is_remote(s) -> bool:
    """An http://, https:// or hf:// address rather than a local path."""
    return isinstance(s, str) and s.lower().startswith(("http://", "https://", "hf://"))


def _one_line(x) -> str:
    return " ".join(str(x).split())


def _hf_endpoint() -> str:
    return (os.environ.get("FITCHECK_HF_ENDPOINT") or os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")


def _hf_token() -> str | None:
    token = os.environ.get("HF_TOKEN")
    if token:
        return token.strip()
    try:  # the token `huggingface-cli login` saved, when huggingface_hub happens to be installed
        from huggingface_hub import get_token
    except ImportError:
        return None
    try:
        return get_token()
    except Exception:
        return None


def resolve_url(src: str) -> str:
    """The http(s) URL behind `src`: hf://org/repo[@rev]/path -> <endpoint>/org/repo/resolve/<rev>/path."""
    if not src.lower().startswith("hf://"):
        return src
    parts = src[5:].split("/")
    kind = ""
    if parts and parts[0] in ("datasets", "spaces"):
        kind, parts = parts[0] + "/", parts[1:]
    if len(parts) < 3 or not all(parts):
        raise RemoteError(src, "an hf:// address is hf://org/repo[@revision]/path/to/file.gguf")
    org, (repo, _, rev) = parts[0], parts[1].partition("@")
    q = urllib.parse.quote
    rev = q(urllib.parse.unquote(rev or "main"), safe="")  # refs/pr/1 is one path segment
    return f"{_hf_endpoint()}/{kind}{q(org)}/{q(repo)}/resolve/{rev}/{q('/'.join(parts[2:]))}"


def _host(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def _origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in: what a credential is bound to."""
    u = urllib.parse.urlsplit(url)
    scheme = u.scheme.lower()
    try:
        port = u.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:  # a port that is not a number: matches nothing
        port = -1
    return scheme, (u.hostname or "").lower(), port


class _Refused(Exception):
    """A redirect fitcheck will not follow (raised inside urllib, reported by RangeFile)."""


class _KeepAuthOnSameHost(urllib.request.HTTPRedirectHandler):
    """Redirects to http(s) only, never from https to http; the token is kept on a same-origin redirect and
    dropped on the way to any other origin (a CDN)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise _Refused(f"the server redirected to a {scheme or 'schemeless'}:// address ({_one_line(newurl)[:120]}); "
                           "only http(s) redirects are followed")
        if scheme == "http" and urllib.parse.urlsplit(req.full_url).scheme.lower() == "https":
            raise _Refused(f"the server redirected from https to plain http ({_one_line(newurl)[:120]}); not followed")
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.get_header("Authorization")
        if new is not None and auth and _origin(newurl) == _origin(req.full_url):
            new.add_unredirected_header("Authorization", auth)
        return new


class _Deadline:
    """One read's deadline, and the sockets open under it: at the deadline a watchdog shuts them down, which ends a
    recv that a server feeds one byte a second (each recv within TIMEOUT_S, the whole never)."""

    local = threading.local()

    def __init__(self, seconds: float):
        self.seconds, self.end = seconds, time.monotonic() + seconds
        self.sockets: list[socket.socket] = []
        self.expired = False

    def left(self) -> float:
        return self.end - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        self.sockets.append(sock)
        if self.left() <= 0:
            self.fire()

    def fire(self) -> None:
        self.expired = True
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @classmethod
    def current(cls) -> "_Deadline | None":
        return getattr(cls.local, "deadline", None)


def _watched(base):
    class Conn(base):
        def connect(self):
            super().connect()
            d = _Deadline.current()
            if d is not None:
                d.watch(self.sock)
    return Conn


_HTTPConnection, _HTTPSConnection = _watched(http.client.HTTPConnection), _watched(http.client.HTTPSConnection)


class _Http(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_HTTPConnection, req)


class _Https(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_HTTPSConnection, req, context=self._context, check_hostname=self._check_hostname)


# only http(s): no ftp, file or data handlers to follow a redirect into
_opener = urllib.request.OpenerDirector()
for _h in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), _Http(), _Https(),
           urllib.request.HTTPDefaultErrorHandler(), _KeepAuthOnSameHost(), urllib.request.HTTPErrorProcessor()):
    _opener.add_handler(_h)


def _deadline_s() -> float:
    """DEADLINE_S, or FITCHECK_REMOTE_DEADLINE_S when set to a number of seconds (1 to 3600)."""
    try:
        v = float(os.environ.get("FITCHECK_REMOTE_DEADLINE_S") or DEADLINE_S)
    except ValueError:
        return DEADLINE_S
    return min(max(v, 1.0), 3600.0) if v == v else DEADLINE_S


class deadline:
    """`with deadline(): ...` bounds every remote read inside it (nested: the outer one holds)."""

    def __init__(self, seconds: float | None = None):
        self.seconds = seconds

    def __enter__(self) -> _Deadline:
        self.outer = _Deadline.current()
        d = self.outer or _Deadline(self.seconds if self.seconds is not None else _deadline_s())
        _Deadline.local.deadline = d
        return d

    def __exit__(self, *exc) -> None:
        _Deadline.local.deadline = self.outer


class RangeFile:
    """A read-only remote file: seek/read/tell, each read past the bytes held is one range request.

    The bytes from offset 0 are kept (`data()`) so they can be cached; the parser only ever
    reads on from what it holds, so what is held is always a prefix of the file.
    """

    def __init__(self, url: str, name: str | None = None, prefix: bytes = b"", size: int | None = None,
                 validator: dict | None = None):
        self.url = url
        self.name = name or url
        self.chunks = [prefix] if prefix else []
        self.have = len(prefix)
        self.size = size
        self.validator = dict(validator or {})  # ETag / Last-Modified of the first response
        self.pos = 0
        self.requests = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.size or 0}[whence]
        self.pos = max(0, base + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def data(self) -> bytes:
        return b"".join(self.chunks)

    def read(self, n: int = -1) -> bytes:
        end = self.pos + (FIRST_READ if n is None or n < 0 else n)
        if self.size is not None:
            end = min(end, self.size)
        if end <= self.pos:
            return b""
        if end > MAX_HEADER_BYTES:  # the parser stops first; this bounds any other caller
            raise self.fail(f"will not read past the first {MAX_HEADER_BYTES >> 20} MiB of a remote file")
        if end > self.have:
            self._fetch(self.have, end)
        if self.pos >= self.have - len(self.chunks[-1]):  # the usual case: all of it is in the last chunk
            start = self.have - len(self.chunks[-1])
            out = self.chunks[-1][self.pos - start : end - start]
        else:
            out = self.data()[self.pos : end]
        self.pos += len(out)
        return out

    def fail(self, problem: str, status: int | None = None) -> RemoteError:
        return RemoteError(self.name, problem, status)

    def _fetch(self, start: int, end: int) -> None:
        """Append bytes [start, end) of the file (fewer when the file ends first)."""
        req = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end - 1}", "User-Agent": USER_AGENT,
                                                        "Accept-Encoding": "identity"})
        hub = _origin(self.url) == _origin(_hf_endpoint())
        token = _hf_token() if hub else None  # only to the Hub endpoint's exact origin (scheme, host and port)
        if token:
            req.add_unredirected_header("Authorization", f"Bearer {token}")
        self.requests += 1
        with deadline() as d:
            left = d.left()
            if left <= 0:
                raise self._late(d)
            watchdog = threading.Timer(left, d.fire)
            watchdog.daemon = True
            watchdog.start()
            try:
                with _opener.open(req, timeout=min(TIMEOUT_S, left)) as resp:
                    body = self._body(resp, start, end)
            except urllib.error.HTTPError as e:
                e.close()
                raise self._http_error(e.code, e.reason, start, hub, bool(token)) from None
            except RemoteError:
                if d.expired:  # the watchdog cut the body short
                    raise self._late(d) from None
                raise
            except _Refused as e:
                raise self.fail(str(e)) from None
            except (OSError, http.client.HTTPException) as e:
                raise self._network_error(e, d) from None
            finally:
                watchdog.cancel()
        self.chunks.append(body)
        self.have += len(body)

    def _late(self, d: "_Deadline") -> RemoteError:
        return self.fail(f"gave up: {_host(self.url)} did not finish sending within {d.seconds:g} s "
                         f"(the deadline for a whole remote read)")

    def _network_error(self, e: Exception, d: "_Deadline") -> RemoteError:
        if d.expired or d.left() <= 0:
            return self._late(d)
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return self.fail(f"no answer from {_host(self.url)} within {TIMEOUT_S:g} s")
        if isinstance(e, urllib.error.URLError):
            return self.fail(f"cannot connect to {_host(self.url)}: {_one_line(reason) or type(reason).__name__}")
        return self.fail(f"connection to {_host(self.url)} failed: {_one_line(e) or type(e).__name__}")

    def _body(self, resp, start: int, end: int) -> bytes:
        """The range's bytes, after checking the answer is the range asked for, of the same file."""
        if "text/html" in (resp.headers.get("Content-Type") or "").lower():
            raise self.fail("the server sent an HTML page, not a GGUF file (on Hugging Face use a /resolve/ link, not /blob/)")
        coding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
        if coding != "identity":  # asked for identity: a compressed range is not the file's bytes (or a bomb)
            raise self.fail(f"the server compressed the range (Content-Encoding: {_one_line(coding)[:40]}) though "
                            "asked not to")
        if resp.status != 206:  # 200: the whole file follows; not one byte more is read
            raise self.fail(f"the server does not support range requests (HTTP {resp.status} instead of 206), "
                            "so only the whole file could be read")
        first, last, total = self._content_range(resp.headers.get("Content-Range"), start)
        self._check_same_file(total, resp.headers)
        want = min(end, total, last + 1) - start
        body = _read_exactly(resp, want)
        if len(body) < want:
            raise self.fail(f"the connection closed early: got {len(body)} of {want} bytes at offset {start}")
        return body

    def _content_range(self, value: str | None, start: int) -> tuple[int, int, int]:
        m = _CONTENT_RANGE.match(value or "")
        if not m or m[3] == "*":
            raise self.fail(f"the server's answer has no usable Content-Range ({_one_line(value)!r})")
        first, last, total = int(m[1]), int(m[2]), int(m[3])
        if first != start or not first <= last < total:
            raise self.fail(f"the server's Content-Range {_one_line(value)!r} does not answer a request from byte {start}")
        return first, last, total

    def _check_same_file(self, total: int, headers) -> None:
        seen = {k: headers.get(k) for k in ("ETag", "Last-Modified") if headers.get(k)}
        if self.size is None:
            self.size, self.validator = total, seen
            return
        etag_changed = "ETag" in seen and "ETag" in self.validator and seen["ETag"] != self.validator["ETag"]
        if total != self.size or etag_changed:
            raise self.fail("the file changed on the server while it was read; try again")

    def _http_error(self, code: int, reason, start: int, hub: bool, token_sent: bool) -> RemoteError:
        where = f"HTTP {code} from {self.url}"
        if code in (401, 403):
            hint = ("" if not hub else ": HF_TOKEN was sent but does not grant access to this repository" if token_sent
                    else ": a gated or private model needs HF_TOKEN set to a Hugging Face token")
            return self.fail(f"access denied ({where}){hint}", code)
        if code == 404:
            return self.fail(f"not found ({where})", code)
        if code == 416:
            return self.fail(f"the file is empty, not a GGUF file ({where})" if start == 0
                             else f"the file ended before byte {start} ({where})", code)
        return self.fail(f"{_one_line(reason) or 'request failed'} ({where})", code)


def _read_exactly(resp, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        b = resp.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


# --- cache: <sha256 of url>.bin holds the prefix read, .json its size, validators and checksum ---

def _cache_files(url: str) -> tuple[Path, Path]:
    key = hashlib.sha256(url.encode()).hexdigest()
    d = cache_dir() / "headers"
    return d / f"{key}.bin", d / f"{key}.json"


def _load_cached(url: str, name: str) -> RangeFile | None:
    """The cached prefix as a RangeFile (it fetches only past the prefix), or None on a miss or a damaged entry."""
    bin_path, meta_path = _cache_files(url)
    try:
        meta = json.loads(meta_path.read_text())
        data = bin_path.read_bytes()
    except (OSError, ValueError):
        return None
    # json and bin are replaced one after the other: the checksum catches a pair from two writers
    if not isinstance(meta, dict) or meta.get("url") != url or meta.get("sha256") != hashlib.sha256(data).hexdigest():
        return None
    size = meta.get("size")
    if not isinstance(size, int) or not 0 < len(data) <= size:
        return None
    return RangeFile(url, name, prefix=data, size=size, validator=meta.get("validator"))


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _store(rf: RangeFile) -> None:
    """Cache what was read; a cache that cannot be written only costs the next read its requests."""
    bin_path, meta_path = _cache_files(rf.url)
    data = rf.data()
    meta = {"url": rf.url, "size": rf.size, "validator": rf.validator,
            "prefix_bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    try:
        bin_path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(bin_path, data)
        _atomic_write(meta_path, json.dumps(meta).encode())
        _prune(bin_path.parent, keep=bin_path)
    except OSError:
        pass


def _prune(folder: Path, keep: Path) -> None:
    """Drop the least recently written entries until the cache holds at most CACHE_MAX_BYTES."""
    limit = CACHE_MAX_BYTES
    entries = []
    for p in folder.iterdir():
        try:
            st = p.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in entries)
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if p.stem == keep.stem:
            continue
        p.unlink(missing_ok=True)
        total -= size


# --- headers and models ---

def read_remote_header(src: str) -> GGUFHeader:
    """One remote GGUF file's header (cached bytes first, then range requests for what is missing)."""
    url = resolve_url(src)
    rf = _load_cached(url, src) or RangeFile(url, src)
    first = rf.data() if rf.size is not None else rf.read(FIRST_READ)
    header = _parse(first, rf.size, src, f=rf)
    if rf.requests:
        _store(rf)
    return header


def split_sources(src: str) -> list[str]:
    """Every part's address given any part's (or [src] when the name is not -NNNNN-of-NNNNN.gguf)."""
    u = urllib.parse.urlsplit(src)
    head, _, name = u.path.rpartition("/")
    m = SPLIT_NAME.match(name)
    if not m:
        return [src]
    count = int(m["count"])
    if count < 1 or not 1 <= int(m["no"]) <= count:
        raise RemoteError(src, f"split name says part {m['no']} of {m['count']}")
    if count > MAX_SPLIT_PARTS:
        raise RemoteError(src, f"split name says {count} parts; fitcheck reads at most {MAX_SPLIT_PARTS}")
    names = [f"{m['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    return [urllib.parse.urlunsplit(u._replace(path=f"{head}/{n}")) for n in names]


def read_remote_model(src: str) -> GGUFModel:
    """A remote model, one file or every part of a split one: the GGUFModel read_model gives for a local file."""
    sources = split_sources(src)
    with deadline():
        if len(sources) == 1:
            h = read_remote_header(src)
            declared = h.metadata.get("split.count", 1)
            if isinstance(declared, int) and declared > 1:
                raise GGUFError(src, f"is one part of a {declared}-part split model but its name lacks "
                                     "the -NNNNN-of-NNNNN.gguf pattern needed to find the others")
            return model_from_header(h)
        return merge_split(src, _read_parts(src, sources))


def _read_parts(src: str, sources: list[str]) -> list[GGUFHeader]:
    """Each part in order, checked as it comes: the first must declare as many parts as the name says, each its own
    number; all headers together at most MAX_SPLIT_HEADER_BYTES. A lying name costs one request, not thousands."""
    headers, total = [], 0
    for i, part in enumerate(sources):
        h = _read_part(src, part)
        meta = h.metadata
        if meta.get("split.count") != len(sources) or meta.get("split.no", i) != i:
            raise RemoteError(src, f"part {i + 1} of {len(sources)} by its name says it is part "
                                   f"{_one_line(meta.get('split.no', '?'))} of {_one_line(meta.get('split.count', 1))}")
        total += h.data_offset  # the header's bytes (what was fetched of this part)
        if total > MAX_SPLIT_HEADER_BYTES:
            raise RemoteError(src, f"the parts' headers pass {MAX_SPLIT_HEADER_BYTES >> 20} MiB together; not read on")
        headers.append(h)
    return headers


def _read_part(src: str, part: str) -> GGUFHeader:
    try:
        return read_remote_header(part)
    except RemoteError as e:
        if e.status == 404:
            name = urllib.parse.urlsplit(part).path.rpartition("/")[2]
            raise RemoteError(src, f"split model is missing part {name} (HTTP 404 from {resolve_url(part)})", 404) from None
        raise


def read_any_model(src: str | os.PathLike) -> GGUFModel:
    """A model from a local path or a remote address (the one entry point callers need)."""
    if is_remote(src):
        return read_remote_model(src)
    from fitcheck.model.gguf_reader import read_model

    return read_model(src)
