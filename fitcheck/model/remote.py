"""Remote GGUF headers: read a model's header over HTTP range requests, never its tensor data.

`https://host/file.gguf` and `hf://org/repo[@revision]/path/file.gguf` are read with
`Range:` requests that grow as gguf_reader's bounded parser asks (1 MiB, then doubling,
at most MAX_HEADER_BYTES), so a header costs a few requests whatever the file's size.
The bytes read are cached under cache_dir()/headers: a second read does no network I/O.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import tempfile
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

TIMEOUT_S = 30.0
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


def _origin(url: str) -> tuple[str, str]:
    u = urllib.parse.urlsplit(url)
    return u.scheme.lower(), u.netloc.lower()


class _KeepAuthOnSameHost(urllib.request.HTTPRedirectHandler):
    """The token goes to the Hub only: kept on a same-origin redirect, dropped on the way to a CDN."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        auth = req.get_header("Authorization")
        if new is not None and auth and _origin(newurl) == _origin(req.full_url):
            new.add_unredirected_header("Authorization", auth)
        return new


_opener = urllib.request.build_opener(_KeepAuthOnSameHost)


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
        req = urllib.request.Request(self.url, headers={"Range": f"bytes={start}-{end - 1}", "User-Agent": USER_AGENT})
        hub = _host(self.url) == _host(_hf_endpoint())
        token = _hf_token() if hub else None  # never sent to a host that is not the Hub's
        if token:
            req.add_unredirected_header("Authorization", f"Bearer {token}")
        self.requests += 1
        try:
            with _opener.open(req, timeout=TIMEOUT_S) as resp:
                body = self._body(resp, start, end)
        except urllib.error.HTTPError as e:
            e.close()
            raise self._http_error(e.code, e.reason, start, hub, bool(token)) from None
        except RemoteError:
            raise
        except (socket.timeout, TimeoutError):
            raise self.fail(f"no answer from {_host(self.url)} within {TIMEOUT_S:g} s") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError):
                raise self.fail(f"no answer from {_host(self.url)} within {TIMEOUT_S:g} s") from None
            raise self.fail(f"cannot connect to {_host(self.url)}: {_one_line(e.reason)}") from None
        except (OSError, http.client.HTTPException) as e:
            raise self.fail(f"connection to {_host(self.url)} failed: {_one_line(e) or type(e).__name__}") from None
        self.chunks.append(body)
        self.have += len(body)

    def _body(self, resp, start: int, end: int) -> bytes:
        """The range's bytes, after checking the answer is the range asked for, of the same file."""
        if "text/html" in (resp.headers.get("Content-Type") or "").lower():
            raise self.fail("the server sent an HTML page, not a GGUF file (on Hugging Face use a /resolve/ link, not /blob/)")
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
    except OSError:
        pass


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
    names = [f"{m['stem']}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]
    return [urllib.parse.urlunsplit(u._replace(path=f"{head}/{n}")) for n in names]


def read_remote_model(src: str) -> GGUFModel:
    """A remote model, one file or every part of a split one: the GGUFModel read_model gives for a local file."""
    sources = split_sources(src)
    if len(sources) == 1:
        h = read_remote_header(src)
        declared = h.metadata.get("split.count", 1)
        if isinstance(declared, int) and declared > 1:
            raise GGUFError(src, f"is one part of a {declared}-part split model but its name lacks "
                                 "the -NNNNN-of-NNNNN.gguf pattern needed to find the others")
        return model_from_header(h)
    return merge_split(src, [_read_part(src, part) for part in sources])


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
