"""A local stand-in for the official release sites: serves release-shaped archives and checksum files under
<root>/<host>/<path>, the layout scripts/fetch_tools.py asks a mirror for (CRDB_TOOLS_MIRROR)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


class ReleaseServer:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[str] = []
        server = self

        class Handler(QuietHandler):
            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def local(self, official_url: str) -> Path:
        parts = urlsplit(official_url)
        path = self.root / parts.netloc / parts.path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def publish(self, url: str, data: bytes) -> str:
        """Serve `data` at the official URL's stand-in; returns its SHA-256."""
        self.local(url).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def tarball(members: dict[str, bytes]) -> bytes:
    """A .tar.gz with the given files, executables mode 755 (what the official archives hold)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def script(text: str) -> bytes:
    return f"#!/bin/sh\necho '{text}'\n".encode()
