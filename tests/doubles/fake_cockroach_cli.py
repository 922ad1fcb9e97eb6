"""The code of the stand-in `cockroach` (NOT CockroachDB): tests/doubles/fake_cockroach.py, whose docstring
says what it implements, proves and does not prove, runs main() from here. It lives in a module so that Python
caches it compiled in __pycache__; a file run as a script is compiled anew on every run."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

# Each command imports what only it needs in its own function (fake_cockroach_node, sockets, TLS, tomllib,
# cryptography): the suite runs this stand-in some 160 times, mostly for `cert` and `node status`, and
# importing everything for every command was about a third of its CPU. fake_cockroach.py runs as a script
# (see the fake_cockroach shim), so tests/doubles is sys.path[0] and fake_cockroach_node imports as it is.


def build_tag() -> str:
    """The version the project pins (versions.toml, the one place), tagged so nothing mistakes this for it."""
    import tomllib

    pinned = tomllib.loads((Path(__file__).resolve().parents[2] / "versions.toml").read_text())["cockroach"]
    return f"{pinned['version']}-standin"


# Testing knob, like NodeLiveness' heartbeatPaused: seconds between joining and the first heartbeat.
FIRST_HEARTBEAT_DELAY = float(os.environ.get("FAKE_COCKROACH_FIRST_HEARTBEAT_DELAY", "0"))
# The cluster setting server.shutdown.initial_wait: how long a stopping node stays up but unready (503 "node is
# shutting down") before it drains and exits; 0s by default (docs v26.2 node-shutdown.md "Unready phase").
SHUTDOWN_INITIAL_WAIT = float(os.environ.get("FAKE_COCKROACH_SHUTDOWN_INITIAL_WAIT", "0"))
NODE_STATUS_COLUMNS = [
    "id",
    "address",
    "sql_address",
    "build",
    "started_at",
    "updated_at",
    "locality",
    "is_available",
    "is_live",
]
CERTS_ERROR = (
    "ERROR: cannot load certificates.\n"
    "Check your certificate settings, set --certs-dir, or use --insecure for insecure clusters.\n\n"
    "problem using security settings: no certificates found; does certs dir exist?"
)

KNOWN_FLAGS = {
    "start": {
        "insecure",
        "certs-dir",
        "store",
        "listen-addr",
        "sql-addr",
        "http-addr",
        "join",
        "locality",
        "cache",
        "max-sql-memory",
        "advertise-addr",
        "background",
        "pid-file",
        "log-dir",
    },
    "init": {"insecure", "certs-dir", "host", "port", "url"},
    "node": {"insecure", "certs-dir", "host", "port", "url", "format"},
    "cert": {"certs-dir", "ca-key", "key-size", "lifetime", "overwrite", "allow-ca-key-reuse"},
    "version": {"build-tag"},
}
BOOLEAN_FLAGS = {"insecure", "background", "overwrite", "allow-ca-key-reuse", "build-tag"}


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def parse(command: str, argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Cobra-style flags: --name=value or --name value; booleans take no value."""
    positional, flags = [], {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name not in KNOWN_FLAGS[command]:
                fail(f"Error: unknown flag: --{name}")
            if not eq and name not in BOOLEAN_FLAGS:
                i += 1
                if i >= len(argv):
                    fail(f"Error: flag needs an argument: --{name}")
                value = argv[i]
            flags[name] = value if eq or name not in BOOLEAN_FLAGS else "true"
        else:
            positional.append(arg)
        i += 1
    return positional, flags


def insecure(flags: dict) -> bool:
    value = flags.get("insecure", os.environ.get("COCKROACH_INSECURE", "false"))
    return value.lower() in {"true", "1"}


def certs_dir(flags: dict) -> Path:
    return Path(
        flags.get("certs-dir") or os.environ.get("COCKROACH_CERTS_DIR") or "~/.cockroach-certs"
    ).expanduser()


def require_certs(flags: dict, names: list[str]) -> Path:
    d = certs_dir(flags)
    if not all((d / n).is_file() for n in names):
        fail(CERTS_ERROR)
    return d


def cluster_dir(store: str | None = None) -> Path:
    if os.environ.get("FAKE_COCKROACH_CLUSTER_DIR"):
        return Path(os.environ["FAKE_COCKROACH_CLUSTER_DIR"])
    if store:
        return Path(store).resolve().parent
    fail("fake cockroach: set FAKE_COCKROACH_CLUSTER_DIR so init/node status find the cluster state")


def log_argv(directory: Path | None) -> None:
    target = os.environ.get("FAKE_COCKROACH_ARGV_LOG") or (directory and directory / "argv.log")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "argv": sys.argv[1:], "time": time.time()}) + "\n")


# --- cert ---------------------------------------------------------------------------------------------------

# How many RSA keys the pool keeps: more than the certificates of one certs dir (the local backend makes a
# node and three client certificates), so a certs dir gets a pooled key for each.
KEY_POOL_SIZE = 8


def new_rsa_key():
    """A new RSA key of `cockroach cert`'s default size, 2048 bits (--key-size is accepted and not followed),
    and its PEM as cockroach writes it (PKCS#1)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return key, pem


def write_key(path: Path, pem: bytes, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        fail(f"ERROR: file {path} already exists")
    path.write_bytes(pem)
    os.chmod(path, 0o600)


def key_pool() -> Path | None:
    """The folder of pooled keys (see the docstring of fake_cockroach.py): $FAKE_COCKROACH_KEY_POOL, else
    fake-cockroach-keys-<uid> in $TMPDIR or /tmp; None with FAKE_COCKROACH_KEY_POOL=off, or when the folder is
    not a directory of this user's alone (mode 0700), and then every key is new."""
    configured = os.environ.get("FAKE_COCKROACH_KEY_POOL", "")
    if configured == "off":
        return None
    pool = Path(configured) if configured else Path(os.environ.get("TMPDIR") or "/tmp") / (
        f"fake-cockroach-keys-{os.getuid()}"
    )
    try:
        pool.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = pool.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        return None
    return pool


def write_node_or_client_key(path: Path, overwrite: bool):
    """Write the key of a node or client certificate to `path` and return it: a pooled key that no *.key file
    in its certs dir holds (the one it replaces included), else a new one. The pool's slots are filled on
    first use; all of it happens under the pool's lock, so concurrent certs of one dir never share a key, and
    each slot is written whole (temp file + os.replace)."""
    import fcntl

    from cryptography.hazmat.primitives import serialization

    pool = key_pool()
    if pool is None:
        key, pem = new_rsa_key()
        write_key(path, pem, overwrite)
        return key
    with open(pool / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = set()
        for other in path.parent.glob("*.key"):
            try:
                taken.add(other.read_bytes())
            except OSError:
                pass
        for i in range(KEY_POOL_SIZE):
            slot = pool / f"rsa2048-{i}.pem"
            try:
                pem = slot.read_bytes()
                if pem in taken:
                    continue
                key = serialization.load_pem_private_key(pem, None, unsafe_skip_rsa_key_validation=True)
            except (OSError, ValueError):  # not made yet (or unreadable): make it now
                key, pem = new_rsa_key()
                tmp = slot.with_name(f"{slot.name}.{os.getpid()}.tmp")
                tmp.write_bytes(pem)
                os.replace(tmp, slot)
            write_key(path, pem, overwrite)
            return key
        # Every pooled key is in this certs dir already.
        key, pem = new_rsa_key()
        write_key(path, pem, overwrite)
        return key


def cmd_cert(argv: list[str]) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    positional, flags = parse("cert", argv)
    log_argv(
        Path(os.environ["FAKE_COCKROACH_CLUSTER_DIR"])
        if os.environ.get("FAKE_COCKROACH_CLUSTER_DIR")
        else None
    )
    if not positional:
        fail("Error: missing cert subcommand")
    sub, args = positional[0], positional[1:]
    d = Path(flags.get("certs-dir") or "~/.cockroach-certs").expanduser()
    if "ca-key" not in flags:
        fail('ERROR: required flag(s) "ca-key" not set')
    ca_key_path = Path(flags["ca-key"])
    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    overwrite = "overwrite" in flags

    def issue(subject_cn: str, key, ca_cert, ca_key, *, is_ca=False, sans=(), usages=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cockroach"),
                        x509.NameAttribute(NameOID.COMMON_NAME, subject_cn),
                    ]
                )
            )
            .issuer_name(
                ca_cert.subject
                if ca_cert
                else x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cockroach"),
                        x509.NameAttribute(NameOID.COMMON_NAME, subject_cn),
                    ]
                )
            )
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        )
        if sans:
            names = []
            for h in sans:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(h)))
                except ValueError:
                    names.append(x509.DNSName(h))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        if is_ca:
            builder = builder.add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        return builder.sign(ca_key or key, hashes.SHA256())

    from cryptography.x509.oid import ExtendedKeyUsageOID as EKU

    if sub == "create-ca":
        if (d / "ca.crt").exists() and not overwrite:
            fail(f"ERROR: file {d / 'ca.crt'} already exists")
        key, pem = new_rsa_key()  # never pooled: each CA has a key of its own
        write_key(ca_key_path, pem, overwrite)
        cert = issue("Cockroach CA", key, None, None, is_ca=True)
        (d / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return
    if not (d / "ca.crt").exists() or not ca_key_path.exists():
        fail(
            f"ERROR: could not load CA: {d / 'ca.crt'} or {ca_key_path} not found; run `cockroach cert create-ca` first"
        )
    ca_cert = x509.load_pem_x509_certificate((d / "ca.crt").read_bytes())
    # Without OpenSSL's full RSA check (primality tests of p and q), which cost more CPU than making a new
    # key: the CA key is the one this stand-in's create-ca wrote, and a key that did not match its numbers
    # would still show, as signatures that fail to verify.
    ca_key = serialization.load_pem_private_key(
        ca_key_path.read_bytes(), None, unsafe_skip_rsa_key_validation=True
    )
    if sub == "create-node":
        if not args:
            fail("ERROR: create-node requires at least one host name or address")
        base, subject, usages = "node", "node", (EKU.SERVER_AUTH, EKU.CLIENT_AUTH)
    elif sub == "create-client":
        if len(args) != 1:
            fail("ERROR: create-client requires exactly one user name")
        base, subject, usages = f"client.{args[0]}", args[0], (EKU.CLIENT_AUTH,)
    else:
        fail(f'Error: unknown command "{sub}" for "cockroach cert"')
    key = write_node_or_client_key(d / f"{base}.key", overwrite)
    sans = args if sub == "create-node" else ()
    cert = issue(subject, key, ca_cert, ca_key, sans=sans, usages=usages)
    (d / f"{base}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


# --- start --------------------------------------------------------------------------------------------------


def cmd_start(argv: list[str]) -> None:
    import signal
    import ssl
    import threading

    from fake_cockroach_node import Cluster, FakeNode, health_server, split_addr

    positional, flags = parse("start", argv)
    if positional:
        fail(f"ERROR: unexpected arguments: {positional}")
    if "join" not in flags:
        fail(
            "ERROR: no --join flags provided to 'cockroach start'\n"
            "HINT: Consider using 'cockroach init' or 'cockroach start-single-node' instead"
        )
    if "store" not in flags:
        fail("ERROR: the fake cockroach needs --store")
    secure = not insecure(flags)
    certs = require_certs(flags, ["ca.crt", "node.crt", "node.key"]) if secure else None
    store = Path(flags["store"].removeprefix("path=").split(",")[0])
    cluster = Cluster(cluster_dir(str(store)))
    log_argv(cluster.dir)
    listen = split_addr(flags.get("listen-addr", "127.0.0.1:26257"), 26257)
    sql = split_addr(flags.get("sql-addr", f"{listen[0]}:{listen[1]}"), listen[1])
    http_addr = split_addr(flags.get("http-addr", "127.0.0.1:8080"), 8080)
    listen_addr, sql_addr = f"{listen[0]}:{listen[1]}", f"{sql[0]}:{sql[1]}"
    node = FakeNode(cluster, listen_addr, sql_addr, flags.get("join", "").split(","), flags.get("locality", ""),
                    FIRST_HEARTBEAT_DELAY)

    try:
        rpc = bind(listen, node.handle_rpc)
        sql_server = bind(sql, node.handle_sql) if sql != listen else None
        http_server = health_server(http_addr, node)
    except OSError as exc:
        fail(f"ERROR: cockroach server exited with error: failed to listen on {exc}: address already in use")
    if secure:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(certs / "node.crt", certs / "node.key")
        http_server.socket = ctx.wrap_socket(http_server.socket, server_side=True)
    store.mkdir(parents=True, exist_ok=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for server in (rpc, sql_server, http_server):
        if server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
    print(
        f"* WARNING: fake cockroach (tests/doubles) node listening: rpc {listen_addr}, sql {sql_addr}",
        flush=True,
    )
    if not secure:
        print("* WARNING: ALL SECURITY CONTROLS HAVE BEEN DISABLED!", flush=True)
    while not stop.wait(0.2):
        node.tick()
    print("initiating graceful shutdown of server", flush=True)
    node.drain()
    time.sleep(SHUTDOWN_INITIAL_WAIT)


def bind(addr: tuple[str, int], handler):
    import socketserver

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline().decode().strip()
            self.wfile.write((handler(line) + "\n").encode())

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(addr, Handler)
    server.daemon_threads = True
    return server


# --- client commands ----------------------------------------------------------------------------------------


def send(addr: str, line: str, default_port: int = 26257) -> str:
    import socket

    from fake_cockroach_node import split_addr

    try:
        with socket.create_connection(split_addr(addr, default_port), timeout=5) as s:
            s.sendall((line + "\n").encode())
            return s.makefile().readline().strip()
    except OSError as exc:
        fail(
            "ERROR: cannot dial server.\nIs the server running?\n"
            f"If the server is running, check --host client-side and --advertise server-side.\n\n{exc}"
        )


def client_setup(command: str, argv: list[str]) -> tuple[list[str], dict, str]:
    positional, flags = parse(command, argv)
    log_argv(
        Path(os.environ["FAKE_COCKROACH_CLUSTER_DIR"])
        if os.environ.get("FAKE_COCKROACH_CLUSTER_DIR")
        else None
    )
    if not insecure(flags):
        require_certs(flags, ["ca.crt", "client.root.crt", "client.root.key"])
    host = flags.get("host", "localhost")
    if ":" not in host:
        host = f"{host}:{flags.get('port', 26257)}"
    return positional, flags, host


def cmd_init(argv: list[str]) -> None:
    _, _, host = client_setup("init", argv)
    answer = send(host, "INIT")
    if answer == "OK":
        print("Cluster successfully initialized")
    elif answer == "ALREADY":
        fail("ERROR: cluster has already been initialized")
    else:
        fail(f"ERROR: failed to initialize node: {answer} (is --host the node's --listen-addr?)")


def cmd_node(argv: list[str]) -> None:
    import csv
    import datetime
    import io

    from fake_cockroach_node import liveness_live

    positional, flags, host = client_setup("node", argv)
    if not positional or positional[0] not in {"status", "ls"}:
        fail("Error: the fake cockroach implements only `node status` and `node ls`")
    answer = send(host, "NODE_STATUS")
    if answer.startswith("ERR"):
        fail(f"ERROR: {answer[4:]}")
    state = json.loads(answer)
    rows, tag = [], build_tag()
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")
    for addr, m in sorted(state["members"].items(), key=lambda kv: kv[1]["id"]):
        # is_live / is_available: the node's liveness record is current (docs v26.2 cockroach-node.md); a
        # killed node stays live until its record expires, as on a real cluster.
        live = liveness_live(state["liveness"].get(str(m["id"])))
        rows.append(
            [
                str(m["id"]),
                addr,
                m["sql_address"],
                tag,
                m["started_at"],
                now,
                m["locality"],
                str(live).lower(),
                str(live).lower(),
            ]
        )
    columns = NODE_STATUS_COLUMNS
    if positional[0] == "ls":
        columns, rows = ["id"], [[r[0]] for r in rows]
    fmt = flags.get("format", "tsv")
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([columns, *rows])
        sys.stdout.write(out.getvalue())
    elif fmt == "tsv":
        sys.stdout.write("\n".join("\t".join(r) for r in [columns, *rows]) + "\n")
    elif fmt == "table":
        widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
        line = lambda r: "  " + " | ".join(v.ljust(w) for v, w in zip(r, widths))
        print(line(columns))
        print("-" + "+".join("-" * (w + 2) for w in widths))
        for r in rows:
            print(line(r))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    else:
        fail(f'Error: invalid argument "{fmt}" for "--format" flag')


def cmd_version(argv: list[str]) -> None:
    _, flags = parse("version", argv)
    tag = build_tag()
    if "build-tag" in flags:
        print(tag)
        return
    print(
        f"Build Tag:        {tag}\nBuild Time:       (stand-in for tests: tests/doubles/fake_cockroach.py)\n"
        "Distribution:     CCL\nPlatform:         linux amd64\nBuild Type:       stand-in (not CockroachDB)"
    )


def main() -> None:
    if len(sys.argv) < 2:
        fail("Usage: cockroach [command]")
    command, argv = sys.argv[1], sys.argv[2:]
    handlers = {
        "start": cmd_start,
        "init": cmd_init,
        "node": cmd_node,
        "cert": cmd_cert,
        "version": cmd_version,
    }
    if command not in handlers:
        fail(
            f'Error: unknown command "{command}" for "cockroach" (the stand-in implements {", ".join(handlers)})'
        )
    handlers[command](argv)


if __name__ == "__main__":
    main()
