"""The download path for real: a local HTTP server on 127.0.0.1 serves weight files."""

import hashlib
import http.server
import threading
from functools import partial

import pytest

from medkit.base.cache import download, hash_matches, sha256sum
from medkit.base.errors import ChecksumError, ConfigError, OfflineError, WeightsError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
GOOD = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        if self.path == "/good.pth":
            body, length = PAYLOAD, len(PAYLOAD)
        elif self.path == "/corrupt.pth":
            body, length = PAYLOAD[:-1] + b"x", len(PAYLOAD)
        elif self.path == "/truncated.pth":
            body, length = PAYLOAD[: len(PAYLOAD) // 2], len(PAYLOAD)  # promises more than it sends
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    monkeypatch.delenv("MEDKIT_OFFLINE", raising=False)
    Handler.hits = 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield partial("http://127.0.0.1:{}/{}".format, httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def test_download_writes_verified_file_then_hits_cache(server, tmp_path):
    dest = tmp_path / "w" / "good.pth"
    assert download(server("good.pth"), dest, GOOD) == dest
    assert sha256sum(dest) == GOOD and Handler.hits == 1
    download(server("good.pth"), dest, GOOD)
    assert Handler.hits == 1, "a cached file with the right hash must not be downloaded again"
    assert [p.name for p in dest.parent.iterdir()] == ["good.pth"], "no temporary file may remain"


def test_hash_prefix_as_torchvision_publishes_it(server, tmp_path):
    assert download(server("good.pth"), tmp_path / "a.pth", GOOD[:8]).exists()
    assert hash_matches(GOOD, GOOD[:8]) and not hash_matches(GOOD, GOOD[:7]) and not hash_matches(GOOD, "deadbeef")


def test_corrupt_download_is_refused_and_leaves_nothing(server, tmp_path):
    with pytest.raises(ChecksumError, match="expected"):
        download(server("corrupt.pth"), tmp_path / "c.pth", GOOD)
    assert list(tmp_path.iterdir()) == []


def test_truncated_download_is_refused_and_leaves_nothing(server, tmp_path):
    with pytest.raises(WeightsError, match="truncated|broke off"):
        download(server("truncated.pth"), tmp_path / "t.pth", GOOD)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_cache_entry_is_replaced(server, tmp_path):
    dest = tmp_path / "good.pth"
    dest.write_bytes(b"garbage")
    download(server("good.pth"), dest, GOOD)
    assert sha256sum(dest) == GOOD and Handler.hits == 1


def test_http_error_is_clear(server, tmp_path):
    with pytest.raises(WeightsError, match="HTTP 404"):
        download(server("missing.pth"), tmp_path / "m.pth", GOOD)


def test_offline_flag_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDKIT_OFFLINE", "1")
    with pytest.raises(OfflineError, match="medkit fetch --weights resnet18"):
        download("http://127.0.0.1:9/x.pth", tmp_path / "x.pth", GOOD, fetch_hint="medkit fetch --weights resnet18")


def test_unreachable_host_is_an_offline_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDKIT_OFFLINE", raising=False)
    with pytest.raises(OfflineError, match="offline"):
        download("http://127.0.0.1:9/x.pth", tmp_path / "x.pth", GOOD, timeout=2)


def test_prefix_hash_is_pinned_to_the_full_sha256_on_first_download(server, tmp_path, monkeypatch):
    dest = tmp_path / "resnet-" / "w-1a2b3c4d.pth"
    download(server("good.pth"), dest, GOOD[:8])
    record = dest.with_name(dest.name + ".sha256")
    assert record.read_text().strip() == GOOD  # trust on first use: the full hash of what was verified
    download(server("good.pth"), dest, GOOD[:8])
    assert Handler.hits == 1
    record.write_text("0" * 64)  # the file no longer matches what was first trusted (same prefix, other bytes)
    monkeypatch.setenv("MEDKIT_OFFLINE", "1")
    with pytest.raises(OfflineError, match="wrong sha256.*deleted.*medkit fetch --weights x"):
        download(server("good.pth"), dest, GOOD[:8], fetch_hint="medkit fetch --weights x")
    assert not dest.exists()
    monkeypatch.delenv("MEDKIT_OFFLINE")
    download(server("good.pth"), dest, GOOD[:8])  # online: fetched again, verified, re-pinned
    assert Handler.hits == 2 and record.read_text().strip() == GOOD


def test_unwritable_cache_is_a_clear_error(server, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    monkeypatch.setenv("MEDKIT_CACHE", str(blocker / "cache"))
    from medkit.base.cache import cache_dir

    with pytest.raises(ConfigError, match="cannot be written.*MEDKIT_CACHE"):
        download(server("good.pth"), cache_dir() / "weights" / "good.pth", GOOD)
    from medkit.deploy import default_salt

    with pytest.warns(UserWarning, match="this process only"):
        salt = default_salt()
    assert salt == default_salt() and len(salt) == 64  # still one salt for the whole process
