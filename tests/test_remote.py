"""Remote GGUF headers over HTTP range requests, against a local server serving real model files.

The server (127.0.0.1 only) routes by the first path segment:
  /r/F       honours Range (206 + Content-Range)       /full/F    ignores Range (200, whole file)
  /auth/F    /r/F, but 401 without "Bearer sekret"      /redirect/F  302 to http://localhost:PORT/r/F
  /short/F   promises the range, sends 1000 bytes       /huge/F    claims 1 TiB (F, then zeros)
  /hop/F     302 to /auth/F (same host)
  /hang/F    answers after 2 s                          /hf/ORG/REPO/resolve/REV/F  serves hf/ORG/REPO/REV/F
  /trickle-status/F, /trickle-headers/F, /trickle-body/F   one byte every 0.1 s at that stage, for a minute
  /ftp/F     302 to ftp://127.0.0.1:PORT/F              /gzip/F    /r/F, labelled Content-Encoding: gzip
"""

from __future__ import annotations

import re
from dataclasses import replace
import shutil
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fitcheck.calibration.synth import SynthModel, write_synthetic
from fitcheck.errors import GGUFError
from fitcheck.model import remote
from fitcheck.model.gguf_reader import read_model
from fitcheck.model.inspection import describe
from fitcheck.model.model_spec import spec_from_gguf
from fitcheck.model.remote import RemoteError, is_remote, read_any_model, read_remote_model, resolve_url

HUGE = 1 << 40
CUT = 1000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.log.append((self.path, self.headers.get("Authorization")))
        mode, _, rel = self.path.split("?")[0].lstrip("/").partition("/")
        if mode == "hang":
            time.sleep(2)
        if mode.startswith("trickle-"):
            return self._trickle(mode.removeprefix("trickle-"))
        if mode == "ftp":
            self.send_response(302)
            self.send_header("Location", f"ftp://127.0.0.1:{srv.server_address[1]}/{rel}")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if mode == "auth" and self.headers.get("Authorization") != "Bearer sekret":
            return self._status(401)
        if mode in ("redirect", "hop"):
            self.send_response(302)
            where = f"http://localhost:{srv.server_address[1]}/r/" if mode == "redirect" else "/auth/"
            self.send_header("Location", where + rel)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if mode == "hf":  # ORG/REPO/resolve/REV/F -> hf/ORG/REPO/REV/F
            org, repo, _, rev, rel = rel.split("/", 4)
            rel = f"hf/{org}/{repo}/{rev}/{rel}"
        path = srv.root / rel
        if not path.is_file():
            return self._status(404)
        size = HUGE if mode == "huge" else path.stat().st_size
        ctype = "text/html" if rel.endswith(".html") else "application/octet-stream"
        if mode == "gzip":
            self.gzip = True
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range") or "")
        if mode == "full" or not m:
            return self._send(path, 200, 0, size, size, ctype)
        a = int(m[1])
        b = min(int(m[2]) if m[2] else size - 1, size - 1)
        if a >= size:
            return self._status(416, {"Content-Range": f"bytes */{size}"})
        self._send(path, 206, a, b + 1, size, ctype, short=mode == "short")

    def _trickle(self, stage):
        head = b"HTTP/1.1 206 Partial Content\r\n"
        fields = b"Content-Range: bytes 0-1048575/2000000\r\nContent-Length: 1048576\r\n"
        out = {"status": b"", "headers": head, "body": head + fields + b"\r\n"}[stage]
        try:
            self.wfile.write(out)
            self.wfile.flush()
            end = time.monotonic() + 60
            filler = b"X-A: b\r\n" * 10_000 if stage == "headers" else head if stage == "status" else b"GGUF" + bytes(10**6)
            for b in filler:
                if time.monotonic() > end:
                    break
                self.wfile.write(bytes([b]))
                self.wfile.flush()
                self.server.bytes_sent += 1
                time.sleep(0.1)
        except OSError:  # the client gave up: as it must
            pass
        self.close_connection = True

    def _status(self, code, headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, path, code, a, end, size, ctype, short=False):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(end - a))
        self.send_header("ETag", f'"{path.stat().st_mtime_ns}"')
        if getattr(self, "gzip", False):
            self.send_header("Content-Encoding", "gzip")
        if code == 206:
            self.send_header("Content-Range", f"bytes {a}-{end - 1}/{size}")
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(a)
            pos = a
            while pos < end:
                chunk = f.read(min(1 << 16, end - pos)) or bytes(min(1 << 16, end - pos))  # past EOF: zeros
                if short:
                    chunk = chunk[:CUT]
                try:
                    self.wfile.write(chunk)
                except OSError:  # the client hung up (as it must on a 200)
                    return
                self.server.bytes_sent += len(chunk)
                pos += len(chunk)
                if short:
                    self.close_connection = True
                    return


def _hostile_header() -> bytes:
    """One metadata string declaring 64 GiB: refused before a byte of it is fetched."""
    key = b"general.name"
    return (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
            + struct.pack("<IQ", 8, 1 << 36))


@pytest.fixture(scope="module")
def served(tmp_path_factory, smollm2_path, gemma3_path):
    """The files the server serves: real models, a split model, broken ones."""
    root = tmp_path_factory.mktemp("served")
    (root / "smollm2.gguf").symlink_to(smollm2_path)
    (root / "gemma3.gguf").symlink_to(gemma3_path)
    (root / "one").mkdir()
    shape = SynthModel(n_layer=4, name="split", seed=3)
    write_synthetic(root / "one" / "m.gguf", shape)
    parts = write_synthetic(root / "m.gguf", shape, split_max_tensors=6)
    assert len(parts) > 2
    with open(smollm2_path, "rb") as f:
        (root / "cut.gguf").write_bytes(f.read(CUT))
    html = b"<!DOCTYPE html><html><body>Not a model</body></html>\n" * 50
    (root / "page.gguf").write_bytes(html)
    (root / "page.html").write_bytes(html)
    (root / "empty.gguf").write_bytes(b"")
    (root / "hostile.gguf").write_bytes(_hostile_header())
    hf = root / "hf" / "org" / "repo" / "v1.0" / "sub"
    hf.mkdir(parents=True)
    (root / "hf" / "org" / "repo" / "main").mkdir()
    (root / "hf" / "org" / "repo" / "main" / "smollm2.gguf").symlink_to(smollm2_path)
    (root / "gap").mkdir()
    for p in parts:
        shutil.copy(p, hf / p.name)
        if "-00002-of-" not in p.name:
            shutil.copy(p, root / "gap" / p.name)
    return root


@pytest.fixture(scope="module")
def server(served):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.root = served
    srv.log, srv.bytes_sent = [], 0
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def fresh(server, tmp_path, monkeypatch):
    """A private header cache, no token or endpoint from the environment, counters at zero."""
    monkeypatch.setenv("FITCHECK_CACHE", str(tmp_path / "cache"))
    for var in ("HF_TOKEN", "HF_ENDPOINT", "FITCHECK_HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    server.log.clear()
    server.bytes_sent = 0


def _same_model(a, b) -> None:
    assert (a.version, a.splits, a.file_size_bytes) == (b.version, b.splits, b.file_size_bytes)
    assert a.metadata == b.metadata
    assert a.tensors == b.tensors


def _one_line_error(src, match) -> GGUFError:
    with pytest.raises(GGUFError, match=match) as e:
        read_remote_model(src)
    assert "\n" not in str(e.value) and str(e.value).startswith(src)
    return e.value


def test_is_remote():
    assert is_remote("https://x/y.gguf") and is_remote("HTTP://x/y.gguf") and is_remote("hf://o/r/f.gguf")
    assert not is_remote("model.gguf") and not is_remote("/tmp/https.gguf") and not is_remote(Path("x"))


@pytest.mark.parametrize("name", ["smollm2.gguf", "gemma3.gguf"])
def test_real_model_header_only(server, served, name):
    local = read_model(served / name)
    m = read_remote_model(f"{server.base}/r/{name}")
    _same_model(m, local)
    assert replace(spec_from_gguf(m), source="") == replace(spec_from_gguf(local), source="")
    header = local.headers[0].data_offset
    assert server.bytes_sent < 2 * header + (1 << 20) and server.bytes_sent * 10 < local.file_size_bytes
    assert len(server.log) <= 4  # 1 MiB, then doubling: gemma's 6.5 MB header is the largest here
    d, ld = describe(m), describe(local)
    assert d["paths"] == [f"{server.base}/r/{name}"]
    assert {k: v for k, v in d.items() if k not in ("path", "paths")} == {k: v for k, v in ld.items() if k not in ("path", "paths")}


def test_second_read_is_cached(server):
    url = f"{server.base}/r/smollm2.gguf"
    first = read_remote_model(url)
    requests = len(server.log)
    assert requests >= 1
    files = sorted(p.suffix for p in (remote.cache_dir() / "headers").iterdir())
    assert files == [".bin", ".json"]
    second = read_remote_model(url)
    assert len(server.log) == requests
    _same_model(second, first)


def test_damaged_cache_is_refetched(server, served):
    url = f"{server.base}/r/smollm2.gguf"
    read_remote_model(url)
    (bin_path,) = (remote.cache_dir() / "headers").glob("*.bin")
    bin_path.write_bytes(bin_path.read_bytes()[:-1])
    n = len(server.log)
    _same_model(read_remote_model(url), read_model(served / "smollm2.gguf"))
    assert len(server.log) > n


def test_split_model_any_part(server, served):
    whole = read_model(served / "one" / "m.gguf")
    parts = sorted(served.glob("m-0000*-of-*.gguf"))
    local = read_model(parts[0])
    m = read_remote_model(f"{server.base}/r/{parts[-1].name}")
    _same_model(m, local)
    assert m.splits == len(parts) and m.paths == tuple(f"{server.base}/r/{p.name}" for p in parts)
    assert spec_from_gguf(m).parameter_count == spec_from_gguf(whole).parameter_count
    assert len(server.log) == len(parts)


def test_split_model_missing_part(server, served):
    (first,) = (served / "gap").glob("*-00001-of-*.gguf")
    e = _one_line_error(f"{server.base}/r/gap/{first.name}", "split model is missing part m-00002-of-.* [(]HTTP 404 from http")
    assert isinstance(e, RemoteError) and e.status == 404


def test_hf_mapping(server, served, monkeypatch):
    monkeypatch.setenv("FITCHECK_HF_ENDPOINT", f"{server.base}/hf/")
    assert resolve_url("hf://org/repo/smollm2.gguf") == f"{server.base}/hf/org/repo/resolve/main/smollm2.gguf"
    assert resolve_url("hf://org/repo@refs%2Fpr%2F1/a b.gguf").endswith("/org/repo/resolve/refs%2Fpr%2F1/a%20b.gguf")
    assert resolve_url("hf://datasets/org/repo/x.gguf") == f"{server.base}/hf/datasets/org/repo/resolve/main/x.gguf"
    _same_model(read_remote_model("hf://org/repo/smollm2.gguf"), read_model(served / "smollm2.gguf"))
    parts = sorted(served.glob("m-0000*-of-*.gguf"))
    m = read_remote_model(f"hf://org/repo@v1.0/sub/{parts[1].name}")
    _same_model(m, read_model(parts[0]))
    assert m.paths[0] == f"hf://org/repo@v1.0/sub/{parts[0].name}"
    assert all(a is None for _, a in server.log)  # no HF_TOKEN, no header


def test_bad_hf_address():
    _one_line_error("hf://org/file.gguf", "hf://org/repo")


def test_token_sent_to_the_hub_only(server, monkeypatch):
    monkeypatch.setenv("FITCHECK_HF_ENDPOINT", f"{server.base}/hf")
    url = f"{server.base}/auth/smollm2.gguf"
    e = _one_line_error(url, "access denied .*HTTP 401.*needs HF_TOKEN")
    assert e.status == 401
    monkeypatch.setenv("HF_TOKEN", "sekret")
    assert read_remote_model(url).metadata["general.architecture"] == "llama"
    # a redirect to another host (a CDN) does not carry the token
    server.log.clear()
    read_remote_model(f"{server.base}/redirect/gemma3.gguf")
    hub = [a for p, a in server.log if p.startswith("/redirect/")]
    cdn = [a for p, a in server.log if p.startswith("/r/")]
    assert len(hub) == len(cdn) > 1 and set(hub) == {"Bearer sekret"} and set(cdn) == {None}
    # a redirect on the Hub's own host keeps it
    server.log.clear()
    read_remote_model(f"{server.base}/hop/smollm2.gguf")
    assert [a for p, a in server.log if p.startswith("/auth/")] == ["Bearer sekret"] * (len(server.log) // 2)
    # a wrong token is named as such
    monkeypatch.setenv("HF_TOKEN", "wrong")
    _one_line_error(url + "?again", "HTTP 401.*HF_TOKEN was sent but does not grant access")
    # and no token goes to a host that is not the Hub's
    monkeypatch.setenv("FITCHECK_HF_ENDPOINT", "https://huggingface.co")
    server.log.clear()
    _one_line_error(url + "?other", r"access denied \(HTTP 401 from http://127.0.0.1:\d+/auth/smollm2.gguf\?other\)$")
    assert server.log == [("/auth/smollm2.gguf?other", None)]


def test_server_without_ranges(server):
    _one_line_error(f"{server.base}/full/smollm2.gguf", "does not support range requests")
    assert len(server.log) == 1 and server.bytes_sent < 98_000_000


def test_not_found(server):
    e = _one_line_error(f"{server.base}/r/nothing.gguf", "not found .*HTTP 404")
    assert e.status == 404


def test_truncated_file(server):
    _one_line_error(f"{server.base}/r/cut.gguf", r"truncated|only \d+ bytes are left")


def test_empty_file(server):
    e = _one_line_error(f"{server.base}/r/empty.gguf", "the file is empty, not a GGUF file .*HTTP 416")
    assert e.status == 416


def test_connection_closed_early(server):
    _one_line_error(f"{server.base}/short/smollm2.gguf", "connection closed early")


def test_html_bodies(server):
    _one_line_error(f"{server.base}/r/page.gguf", "not a GGUF file")
    _one_line_error(f"{server.base}/r/page.html", "HTML page")


def test_hostile_header_stays_bounded(server):
    _one_line_error(f"{server.base}/huge/hostile.gguf", "larger than 64 MiB")
    assert len(server.log) == 1 and server.bytes_sent <= 1 << 20


def test_no_connection():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    _one_line_error(f"http://127.0.0.1:{port}/m.gguf", "cannot connect to 127.0.0.1")


def test_timeout(server, monkeypatch):
    monkeypatch.setattr(remote, "TIMEOUT_S", 0.3)
    _one_line_error(f"{server.base}/hang/smollm2.gguf", "no answer from 127.0.0.1 within 0.3 s")


def test_read_any_model(server, served):
    _same_model(read_any_model(served / "smollm2.gguf"), read_any_model(f"{server.base}/r/smollm2.gguf"))


# --- hostile servers: each ends within the deadline, in one line, no credential off its origin ---

@pytest.mark.parametrize("stage", ["status", "headers", "body"])
def test_a_trickling_server_is_cut_off_at_the_deadline(server, monkeypatch, stage):
    monkeypatch.setattr(remote, "DEADLINE_S", 1.0)  # each byte comes well within the per-read timeout
    t0 = time.monotonic()
    _one_line_error(f"{server.base}/trickle-{stage}/smollm2.gguf", r"gave up: 127.0.0.1 did not finish sending within 1 s")
    assert time.monotonic() - t0 < 1.0 + 10  # the deadline, not the minute the server would go on for


def test_redirects_only_to_http_and_never_down_from_https(server):
    _one_line_error(f"{server.base}/ftp/smollm2.gguf", r"redirected to a ftp:// address .*only http\(s\) redirects")
    assert [p for p, _ in server.log] == ["/ftp/smollm2.gguf"]  # nothing was sent anywhere else
    handler = remote._KeepAuthOnSameHost()
    req = remote.urllib.request.Request("https://example.org/m.gguf")
    with pytest.raises(remote._Refused, match="from https to plain http"):
        handler.redirect_request(req, None, 302, "Found", {}, "http://example.org/m.gguf")


def test_compressed_ranges_are_refused(server):
    _one_line_error(f"{server.base}/gzip/smollm2.gguf", r"compressed the range \(Content-Encoding: gzip\)")


def test_the_token_goes_to_the_endpoints_exact_origin_only(server, served, monkeypatch):
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)  # same host, another port
    other.daemon_threads, other.root, other.log, other.bytes_sent = True, served, [], 0
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_TOKEN", "sekret")
        monkeypatch.setenv("FITCHECK_HF_ENDPOINT", f"{server.base}/hf")
        read_remote_model(f"http://127.0.0.1:{other.server_address[1]}/r/smollm2.gguf")
        assert other.log and all(a is None for _, a in other.log)
        # the endpoint is https: the same host and port over plain http gets no token
        monkeypatch.setenv("FITCHECK_HF_ENDPOINT", f"https://127.0.0.1:{server.server_address[1]}/hf")
        read_remote_model(f"{server.base}/r/gemma3.gguf")
        assert server.log and all(a is None for _, a in server.log)
        # the default port written out is the same origin
        assert remote._origin("https://huggingface.co/x") == remote._origin("https://HuggingFace.co:443/y")
    finally:
        other.shutdown()
        other.server_close()


def test_a_split_name_cannot_fan_out(server, served):
    _one_line_error(f"{server.base}/r/m-00001-of-99999.gguf", "says 99999 parts; fitcheck reads at most 256")
    assert server.log == []
    (first,) = [p for p in served.glob("m-00001-of-*.gguf")]
    lying = served / "m-00001-of-00200.gguf"
    shutil.copy(first, lying)
    try:
        _one_line_error(f"{server.base}/r/{lying.name}", r"part 1 of 200 by its name says it is part 0 of \d+")
        assert len(server.log) == 1  # checked on the first part, not after 200 requests
    finally:
        lying.unlink()


def test_the_header_cache_is_bounded(server, monkeypatch, tmp_path):
    monkeypatch.setattr(remote, "CACHE_MAX_BYTES", 1 << 20)
    for name in ("smollm2.gguf", "gemma3.gguf", "one/m.gguf"):
        read_remote_model(f"{server.base}/r/{name}")
    folder = tmp_path / "cache" / "headers"
    sizes = [p.stat().st_size for p in folder.iterdir()]
    newest = max(folder.glob("*.bin"), key=lambda p: p.stat().st_mtime_ns)
    assert sum(sizes) <= (1 << 20) + newest.stat().st_size + 4096
