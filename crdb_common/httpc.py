"""httpx's one-shot calls (get, post, ...) with one TLS context per process instead of one per call.

`httpx.get()` makes a client for the call, and every client builds its own SSLContext, loading the whole CA
bundle: about 25 ms of CPU, even for a plain http:// URL that never uses it. Polling the app, Grafana or a
node's /health every second from a long-lived process paid that on every poll (one test-suite run made 1,786
such loads, 60 CPU-seconds). The context is built once and shared: an SSLContext used only for client
connections is safe to share between threads and clients, and it verifies exactly as httpx's default does.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

import httpx


@functools.cache
def default_tls() -> ssl.SSLContext:
    """httpx's own default verification (certifi, or SSL_CERT_FILE / SSL_CERT_DIR), built once."""
    return httpx.create_ssl_context()


def trusting(ca_file: str | os.PathLike) -> ssl.SSLContext:
    """A context that trusts only `ca_file`, rebuilt when the file changes (a reset cluster gets a new CA)."""
    st = os.stat(ca_file)
    return _trusting(os.fspath(ca_file), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _trusting(ca_file: str, _mtime_ns: int, _size: int) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    kwargs.setdefault("verify", default_tls())
    return httpx.request(method, url, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def put(url: str, **kwargs: Any) -> httpx.Response:
    return request("PUT", url, **kwargs)


def delete(url: str, **kwargs: Any) -> httpx.Response:
    return request("DELETE", url, **kwargs)
