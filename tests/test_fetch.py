"""The one fetcher (genbench/fetch.py) against a loopback HTTP server this test starts on 127.0.0.1: first use
downloads and verifies, tampered files are refused and not cached, a cut download resumes with a Range
request, transient errors are retried, the mirror is tried first, offline mode opens no socket. Nothing here
reaches beyond 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import run_main

from genbench import fetch as fetcher
from genbench.errors import GenbenchError


class LoopbackServer:
    """Serves `files` (URL path -> bytes) with Range support. `cut[path] = n` cuts the next n responses
    of that path halfway (full Content-Length announced, half the body sent, connection closed);
    `fail[path] = n` answers the next n requests with 503. `requests` logs (path, Range header)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.fail: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep pytest's output clean
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                if server.fail.get(self.path, 0) > 0:
                    server.fail[self.path] -= 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path not in server.files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data, start = server.files[self.path], 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut.get(self.path, 0) > 0:
                    server.cut[self.path] -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = LoopbackServer()
    yield running
    running.close()


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A cache and a registry of our own; `register(name, data, url, **entry)` adds a file entry."""
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GENBENCH_MIRROR", raising=False)
    monkeypatch.delenv("GENBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(fetcher, "RETRY_DELAYS", (0.0, 0.0, 0.0))
    path = tmp_path / "registry.json"
    monkeypatch.setenv("GENBENCH_REFERENCE_REGISTRY", str(path))
    content: dict = {"reference_sets": {}, "files": {}, "folders": {}, "models": {}}

    def register(name: str, url: str, file_path: str, sha256: str | None, size: int | None = None,
                 section: str = "files", **extra) -> None:
        content[section][name] = {"url": url, "path": file_path, "sha256": sha256, "size": size, **extra}
        path.write_text(json.dumps(content))

    register.content = content
    register.path = path
    return register


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_listing(tmp_path: Path) -> list[str]:
    """Every file under the cache except fetch records and locks."""
    root = tmp_path / "cache"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and "records" not in p.relative_to(root).parts)


DATA = bytes(range(256)) * 997  # 255,232 bytes: several read chunks are not needed, but halves are exact


def test_first_use_downloads_verifies_and_then_uses_the_cache(server, registry, tmp_path):
    server.files["/w/model.bin"] = DATA
    registry("weights", server.url("/w/model.bin"), "sub/model.bin", digest(DATA), len(DATA))
    path = fetcher.fetch("weights", progress=False)
    assert path == tmp_path / "cache" / "sub" / "model.bin"
    assert path.read_bytes() == DATA
    assert cache_listing(tmp_path) == ["sub/model.bin"]  # no .part left behind
    record = json.loads((tmp_path / "cache" / "records" / "weights.json").read_text())
    assert record["sha256"] == digest(DATA) and record["url"] == server.url("/w/model.bin")
    assert len(server.requests) == 1
    assert fetcher.fetch("weights", progress=False) == path  # second use: no request
    assert len(server.requests) == 1


def test_tampered_download_is_refused_and_not_cached(server, registry, tmp_path, capsys, monkeypatch):
    server.files["/w/model.bin"] = DATA[:-1] + b"\x00"  # one byte differs from the published file
    registry("weights", server.url("/w/model.bin"), "model.bin", digest(DATA))
    with pytest.raises(GenbenchError) as error:
        fetcher.fetch("weights", progress=False)
    message = str(error.value)
    assert "does not match the registry's" in message and server.url("/w/model.bin") in message
    assert "\n" not in message
    assert cache_listing(tmp_path) == []

    # as a CLI error: one line, exit 2 (through a command that fetches a registered file by name)
    code, _, err = run_main(capsys, monkeypatch, "models", "fetch", "weights")
    assert code == 2 and "does not match the registry's" in err and "Traceback" not in err
    assert cache_listing(tmp_path) == []


def test_a_cached_file_is_hashed_again_only_when_size_or_mtime_changed(server, registry, tmp_path,
                                                                        monkeypatch):
    server.files["/w/model.bin"] = DATA
    registry("weights", server.url("/w/model.bin"), "model.bin", digest(DATA))
    path = fetcher.fetch("weights", progress=False)
    hashed = []
    real = fetcher.sha256_file
    monkeypatch.setattr(fetcher, "sha256_file", lambda p: hashed.append(p) or real(p))
    fetcher.fetch("weights", progress=False)
    assert hashed == []  # size and mtime as recorded: the recorded digest stands
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # touched, same bytes
    fetcher.fetch("weights", progress=False)
    assert hashed == [path]
    fetcher.fetch("weights", progress=False)
    assert hashed == [path]  # the new mtime was recorded
    path.write_bytes(DATA[::-1])  # same size, other bytes
    with pytest.raises(GenbenchError, match="does not match the registry's"):
        fetcher.fetch("weights", progress=False)


def test_without_a_digest_the_first_download_is_recorded_and_checked_ever_after(server, registry, tmp_path):
    server.files["/w/model.bin"] = DATA
    registry("weights", server.url("/w/model.bin"), "model.bin", None)
    path = fetcher.fetch("weights", progress=False)
    assert json.loads((tmp_path / "cache" / "records" / "weights.json").read_text())["sha256"] == digest(DATA)
    path.write_bytes(DATA[::-1])  # replaced behind genbench's back
    with pytest.raises(GenbenchError, match="changed since it was first used"):
        fetcher.fetch("weights", progress=False)

    path.unlink()  # deleted, and the publisher now serves other bytes: refused, nothing kept
    server.files["/w/model.bin"] = DATA[::-1]
    with pytest.raises(GenbenchError, match="does not match the recorded .* changed upstream since"):
        fetcher.fetch("weights", progress=False)
    assert cache_listing(tmp_path) == []
    server.files["/w/model.bin"] = DATA  # the same bytes again: accepted
    assert fetcher.fetch("weights", progress=False).read_bytes() == DATA


def test_a_download_cut_halfway_resumes_with_a_range_request(server, registry, tmp_path):
    server.files["/w/model.bin"] = DATA
    server.cut["/w/model.bin"] = 1
    registry("weights", server.url("/w/model.bin"), "model.bin", digest(DATA), len(DATA))
    path = fetcher.fetch("weights", progress=False)
    assert path.read_bytes() == DATA
    ranges = [r for p, r in server.requests if p == "/w/model.bin"]
    assert ranges == [None, f"bytes={len(DATA) // 2}-"]  # the second request asked only for the rest
    assert cache_listing(tmp_path) == ["model.bin"]


def test_a_partial_file_from_an_interrupted_run_is_resumed(server, registry, tmp_path):
    server.files["/w/model.bin"] = DATA
    registry("weights", server.url("/w/model.bin"), "model.bin", digest(DATA))
    part = tmp_path / "cache" / "model.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA[:1000])  # what a killed process left
    assert fetcher.fetch("weights", progress=False).read_bytes() == DATA
    assert server.requests == [("/w/model.bin", "bytes=1000-")]


def test_a_corrupt_partial_file_is_discarded_and_downloaded_afresh(server, registry, tmp_path):
    server.files["/w/model.bin"] = DATA
    registry("weights", server.url("/w/model.bin"), "model.bin", digest(DATA))
    part = tmp_path / "cache" / "model.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\xff" * 1000)  # not a prefix of the file: the resumed digest cannot match
    assert fetcher.fetch("weights", progress=False).read_bytes() == DATA
    assert [r for _, r in server.requests] == ["bytes=1000-", None]


def test_transient_errors_are_retried_then_given_up(server, registry, tmp_path, capsys):
    server.files["/w/model.bin"] = DATA
    server.fail["/w/model.bin"] = 2
    registry("weights", server.url("/w/model.bin"), "model.bin", digest(DATA))
    assert fetcher.fetch("weights", progress=False).read_bytes() == DATA
    assert len(server.requests) == 3
    assert "HTTP 503" in capsys.readouterr().err  # each retry is announced

    server.fail["/w/other.bin"] = 100
    registry("other", server.url("/w/other.bin"), "other.bin", None)
    with pytest.raises(GenbenchError, match="HTTP 503.* after 4 attempts.*download it by hand to"):
        fetcher.fetch("other", progress=False)
    assert len(server.requests) == 3 + 4  # bounded: len(RETRY_DELAYS) + 1 attempts
    assert cache_listing(tmp_path) == ["model.bin"]


def test_a_missing_file_is_not_retried_and_the_error_names_url_and_path(server, registry, tmp_path):
    registry("weights", server.url("/w/nothing.bin"), "model.bin", None)
    with pytest.raises(GenbenchError) as error:
        fetcher.fetch("weights", progress=False)
    message = str(error.value)
    assert f"could not download {server.url('/w/nothing.bin')}: HTTP 404" in message
    assert f"download it by hand to {tmp_path / 'cache' / 'model.bin'}" in message
    assert len(server.requests) == 1


def test_the_mirror_is_tried_first_by_cache_path(server, registry, tmp_path, monkeypatch):
    server.files["/mirror/sub/model.bin"] = DATA
    registry("weights", "https://publisher.invalid/model.bin", "sub/model.bin", digest(DATA))
    monkeypatch.setenv("GENBENCH_MIRROR", server.url("/mirror/"))
    assert fetcher.fetch("weights", progress=False).read_bytes() == DATA
    assert server.requests == [("/mirror/sub/model.bin", None)]
    record = json.loads((tmp_path / "cache" / "records" / "weights.json").read_text())
    assert record["url"] == server.url("/mirror/sub/model.bin")


def test_a_file_missing_on_the_mirror_comes_from_the_publisher(server, registry, monkeypatch):
    server.files["/publisher/model.bin"] = DATA
    registry("weights", server.url("/publisher/model.bin"), "model.bin", digest(DATA))
    monkeypatch.setenv("GENBENCH_MIRROR", server.url("/mirror"))
    assert fetcher.fetch("weights", progress=False).read_bytes() == DATA
    assert [p for p, _ in server.requests] == ["/mirror/model.bin", "/publisher/model.bin"]


def test_hf_endpoint_replaces_the_hub_host(registry, monkeypatch):
    hub = "https://huggingface.co/org/repo/resolve/main/model.safetensors"
    registry("weights", hub, "m.safetensors", None)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub-mirror.example/")
    assert fetcher.candidate_urls(fetcher.registered_file("weights")) == [
        "https://hub-mirror.example/org/repo/resolve/main/model.safetensors"]


def no_sockets(monkeypatch) -> None:
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a connection was attempted in offline mode")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_offline_mode_opens_no_socket_and_names_url_and_path(server, registry, tmp_path, monkeypatch,
                                                           capsys):
    server.files["/w/model.bin"] = DATA
    registry("weights", server.url("/w/model.bin"), "model.bin", digest(DATA))
    monkeypatch.setenv("GENBENCH_MIRROR", server.url("/mirror"))
    monkeypatch.setenv("GENBENCH_OFFLINE", "1")
    with monkeypatch.context() as patch:
        no_sockets(patch)
        with pytest.raises(GenbenchError) as error:
            fetcher.fetch("weights", progress=False)
    message = str(error.value)
    assert server.url("/w/model.bin") in message and "GENBENCH_OFFLINE" in message
    assert f"download it by hand to {tmp_path / 'cache' / 'model.bin'}" in message
    assert server.requests == []

    # a copy put there by hand is used (and checked) without a connection
    (tmp_path / "cache" / "model.bin").write_bytes(DATA)
    with monkeypatch.context() as patch:
        no_sockets(patch)
        assert fetcher.fetch("weights", progress=False).read_bytes() == DATA



def test_the_offline_flag_sets_the_switch(server, registry, capsys, monkeypatch):
    registry("other", server.url("/w/other.bin"), "other.bin", None)
    with monkeypatch.context() as patch:
        no_sockets(patch)
        patch.setenv("GENBENCH_OFFLINE", "0")  # restored after the test; the flag sets it in this process
        code, _, err = run_main(capsys, monkeypatch, "--offline", "models", "fetch", "other")
    assert code == 2 and "GENBENCH_OFFLINE" in err and server.url("/w/other.bin") in err
    assert server.requests == []


def test_offline_mode_still_reads_a_file_url_mirror(registry, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    (mirror / "sub" / "model.bin").write_bytes(DATA)
    registry("weights", "https://publisher.invalid/model.bin", "sub/model.bin", digest(DATA))
    monkeypatch.setenv("GENBENCH_MIRROR", mirror.as_uri())
    monkeypatch.setenv("GENBENCH_OFFLINE", "1")
    with monkeypatch.context() as patch:
        no_sockets(patch)
        assert fetcher.fetch("weights", progress=False).read_bytes() == DATA


def test_a_folder_is_its_registered_files(server, registry, tmp_path):
    files = {"config.json": b'{"a": 1}', "model.safetensors": DATA}
    for name, data in files.items():
        server.files[f"/org/repo/resolve/main/{name}"] = data
        registry(f"det/{name}", server.url(f"/org/repo/resolve/main/{name}"), f"det/{name}", digest(data))
    registry.content["folders"]["det"] = [f"det/{name}" for name in files]
    registry.path.write_text(json.dumps(registry.content))
    folder = fetcher.fetch_folder("det", progress=False)
    assert folder == tmp_path / "cache" / "det"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files


def test_registry_errors_name_the_file(registry, tmp_path):
    registry("weights", "http://127.0.0.1:9/x", "x.bin", "not-hex")
    with pytest.raises(GenbenchError, match=r"registry.json: file 'weights' has sha256 'not-hex'"):
        fetcher.fetch("weights", progress=False)
    with pytest.raises(GenbenchError, match="not a registered file"):
        fetcher.fetch("nope", progress=False)


def test_the_shipped_registry_is_consistent(monkeypatch):
    """Every shipped entry parses; model files, folder files and reference sets are registered, paths in the
    cache are distinct, URLs are the publishers' https ones, and every digest given is hex."""
    from genbench.models.official import registered_models

    monkeypatch.delenv("GENBENCH_REFERENCE_REGISTRY", raising=False)
    files = fetcher.registered_files()
    registry = fetcher.load_registry()
    assert {"inception-2015-12-05", "dinov2-large", "vgg16-torchvision", "lpips-v0.1-vgg"} <= set(files)
    paths = [file.path for file in files.values()]
    assert len(paths) == len(set(paths))
    assert all(file.url.startswith("https://") for file in files.values())
    for folder, names in registry["folders"].items():
        assert all(name in files for name in names), folder
        assert len({files[name].cached.parent for name in names}) == 1, folder
    models = registered_models()
    official = {"sit-repae-sdvae", "sit-repae-invae", "sit-repae-vavae", "repa-sit-xl-2", "sit-xl-2-256"}
    assert official <= set(models)
    for model in models.values():
        assert all(name in files for name in model.file_names), model.name
    assert models["sit-repae-sdvae"].sampling["cfg_scale"] == 2.2  # REPA-E README, CFG 2.2 on [0, 0.65]
    assert all(entry["url"].startswith("https://") for entry in registry["reference_sets"].values())


def test_processes_fetching_the_same_file_download_it_once(server, registry, tmp_path):
    """Every rank of a torchrun job asks for the same file at once: one downloads, the others wait for
    the lock and find it verified (threads stand in for processes: each opens the lock file itself)."""
    server.files["/w/model.bin"] = DATA * 8
    registry("weights", server.url("/w/model.bin"), "model.bin", digest(DATA * 8))
    results, errors = [], []

    def rank() -> None:
        try:
            results.append(fetcher.fetch("weights", progress=False).read_bytes() == DATA * 8)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=rank) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [True] * 4
    assert len(server.requests) == 1
