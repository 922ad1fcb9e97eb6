"""crdb_common/httpc.py: one TLS context per process, verifying as httpx's default does."""

import datetime as dt
import ipaddress
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crdb_common import httpc


def _self_signed(folder, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, pem = folder / f"{name}.crt", folder / f"{name}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


@pytest.fixture
def tls_server(tmp_path):
    crt, key = _self_signed(tmp_path, "server")

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", crt
    server.shutdown()


def test_the_default_context_is_built_once_and_verifies():
    assert httpc.default_tls() is httpc.default_tls()
    assert httpc.default_tls().verify_mode == ssl.CERT_REQUIRED and httpc.default_tls().check_hostname


def test_a_ca_file_context_is_reused_until_the_file_changes_and_verifies_against_it(tmp_path, tls_server):
    url, crt = tls_server
    first = httpc.trusting(crt)
    assert httpc.trusting(crt) is first
    assert httpc.get(url, verify=first, timeout=5).text == "ok"
    with pytest.raises(httpx.ConnectError):  # the public CA bundle does not trust a self-signed server
        httpc.get(url, timeout=5)

    other, _ = _self_signed(tmp_path, "other")  # a reset cluster: a new CA in the same file
    crt.write_bytes(other.read_bytes())
    os.utime(crt, ns=(1, 1))
    renewed = httpc.trusting(crt)
    assert renewed is not first
    with pytest.raises(httpx.ConnectError):  # the new CA did not sign the running server's certificate
        httpc.get(url, verify=renewed, timeout=5)
