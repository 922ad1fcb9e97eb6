#!/usr/bin/env python3
"""Fetch the pinned official tools into .data/bin/ when they are not on PATH.

    python3 scripts/fetch_tools.py TOOL [TOOL...]     TOOL: cockroach prometheus grafana kind kubectl helm

For each tool, in order: $<TOOL>_BIN (e.g. COCKROACH_BIN) when it names an executable; the tool on PATH; a
copy installed earlier in .data/bin/; else the pinned release from versions.toml ([tools.<name>]),
downloaded from its official site and verified against the SHA-256 its publisher serves next to it. An
archive whose checksum does not match is refused and nothing of it is left behind.

Prints "TOOL PATH" per tool found (stdout). Exits 2 when any tool is missing, with ONE line per missing
tool on stderr saying what to get and where. Never needs root.

Environment: CRDB_TOOLS_MIRROR (a base URL standing in for every official host: <mirror>/<host>/<path>;
the tests use a local server), CRDB_TOOLS_BIN_DIR (default .data/bin), CRDB_TOOLS_PLATFORM (e.g.
darwin-arm64; default: this machine), CRDB_TOOLS_TIMEOUT (seconds per request, default 30).
"""

from __future__ import annotations

import hashlib
import os
import platform as platform_module
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = REPO_ROOT / "versions.toml"
TOOLS = ("cockroach", "prometheus", "grafana", "kind", "kubectl", "helm")
# Names a tool may carry on PATH: Debian's grafana package installs grafana-server.
PATH_NAMES = {"grafana": ("grafana", "grafana-server")}
PLATFORMS = ("linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64")
MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class FetchError(Exception):
    """A tool could not be had; the message is the one line the user sees."""


def host_platform(system: str | None = None, machine: str | None = None) -> str:
    """linux/darwin x amd64/arm64 of this machine (uname), or FetchError naming what is unsupported."""
    system = (system or platform_module.system()).lower()
    machine = (machine or platform_module.machine()).lower()
    arch = MACHINES.get(machine)
    name = f"{system}-{arch}"
    if arch is None or name not in PLATFORMS:
        raise FetchError(
            f"no official build is pinned for {system}/{machine} (supported: {', '.join(PLATFORMS)})"
        )
    return name


def load_versions(path: Path = VERSIONS_FILE) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError as exc:  # Python < 3.11 (e.g. an old macOS python3)
        raise SystemExit(
            "fetch_tools.py needs Python 3.11 or newer (tomllib); run it with .venv/bin/python"
        ) from exc
    with path.open("rb") as f:
        return tomllib.load(f)


@dataclass(frozen=True)
class Release:
    tool: str
    version: str
    url: str
    checksum_url: str
    binary: str  # path inside the archive; "" when the download is the binary itself
    page: str

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def install_dir_name(self) -> str:
        return f"{self.tool}-{self.version.lstrip('v')}"


def release_for(tool: str, plat: str, versions: dict) -> Release:
    """The pinned release of `tool` for platform `plat` (one of PLATFORMS), URLs filled in."""
    spec = versions["tools"][tool]
    version = spec.get("version") or versions[tool]["version"]  # cockroach: the project-wide pin
    values = {"version": version, "platform": spec["platforms"][plat]}
    return Release(
        tool=tool,
        version=version,
        url=spec["url"].format(**values),
        checksum_url=spec["checksum_url"].format(**values),
        binary=spec["binary"].format(**values),
        page=spec["page"],
    )


def mirrored(url: str, mirror: str) -> str:
    """The official URL, or its stand-in under the mirror: <mirror>/<host>/<path>."""
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def expected_sha256(text: str, archive: str) -> str:
    """The hash for `archive` from a checksum file: "<hash>" alone or sha256sum lines "<hash>  <name>"."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    for fields in lines:
        if len(fields) == 1 and len(lines) == 1:
            return _hex(fields[0])
        if len(fields) >= 2 and fields[1].lstrip("*").rsplit("/", 1)[-1] == archive:
            return _hex(fields[0])
    raise FetchError(f"the published checksum file names no {archive}")


def _hex(value: str) -> str:
    value = value.lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise FetchError(f"the published checksum is not a SHA-256: {value[:80]!r}")
    return value


def extract_safely(tar: tarfile.TarFile, dest: Path) -> None:
    """Unpack refusing absolute paths, ../ escapes and links out of `dest` (the "data" filter, Python
    3.11.4+; older interpreters get the same check by hand)."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = dest.resolve()
    for member in tar.getmembers():
        target = (dest / member.name).resolve()
        if root not in (target, *target.parents) or member.issym() or member.islnk():
            raise FetchError(
                f"refusing archive member {member.name!r} (outside the install folder or a link)"
            )
    tar.extractall(dest)


class Fetcher:
    def __init__(
        self,
        bin_dir: Path,
        plat: str,
        mirror: str = "",
        timeout: float = 30.0,
        env: dict | None = None,
        versions: dict | None = None,
    ):
        self.bin_dir = bin_dir
        self.platform = plat
        self.mirror = mirror
        self.timeout = timeout
        self.env = os.environ if env is None else env
        self.versions = versions if versions is not None else load_versions()
        # Loopback stand-ins are reached directly, whatever proxy the environment names.
        handlers = [urllib.request.ProxyHandler({})] if mirror else []
        self.opener = urllib.request.build_opener(*handlers)

    # --- finding ---------------------------------------------------------------------------------------
    def existing(self, tool: str) -> str | None:
        explicit = self.env.get(f"{tool.upper()}_BIN", "")
        if explicit:
            path = Path(explicit).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            raise FetchError(
                f"{tool}: {tool.upper()}_BIN={explicit!r} is not an executable file; fix or unset it"
            )
        path_env = self.env.get("PATH", "")
        for name in PATH_NAMES.get(tool, (tool,)):
            found = shutil.which(name, path=path_env)
            if found and Path(found).resolve().parent != self.bin_dir.resolve():
                return found
        installed = self.bin_dir / tool
        return str(installed) if installed.is_file() and os.access(installed, os.X_OK) else None

    def get(self, tool: str) -> str:
        found = self.existing(tool)
        if found:
            return found
        return self.install(release_for(tool, self.platform, self.versions))

    # --- installing ------------------------------------------------------------------------------------
    def install(self, rel: Release) -> str:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".fetch-{rel.tool}-", dir=self.bin_dir))
        try:
            download = work / rel.archive
            want = expected_sha256(self.read_text(rel.checksum_url, rel), rel.archive)
            got = self.download(rel, download)
            if got != want:
                raise FetchError(
                    f"{rel.tool}: {rel.archive} does not match its published SHA-256 (got {got[:12]}..., "
                    f"want {want[:12]}...); nothing installed. Retry, or get it from {rel.page}"
                )
            return str(self.place(rel, download, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def place(self, rel: Release, download: Path, work: Path) -> Path:
        """Unpack (or take) the verified download into .data/bin/<tool>-<version>/, link .data/bin/<tool>."""
        staged = work / rel.install_dir_name
        staged.mkdir()
        if rel.binary:
            with tarfile.open(download) as tar:
                extract_safely(tar, staged)
            inner = rel.binary
        else:
            inner = rel.tool
            shutil.move(download, staged / inner)
        target = staged / inner
        if not target.is_file():
            raise FetchError(
                f"{rel.tool}: {rel.archive} has no {inner}; nothing installed (get it from {rel.page})"
            )
        target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        final = self.bin_dir / rel.install_dir_name
        if final.exists():
            shutil.rmtree(final)
        staged.rename(final)
        link = self.bin_dir / rel.tool
        tmp_link = work / "link"
        tmp_link.symlink_to(Path(rel.install_dir_name) / inner)
        os.replace(tmp_link, link)
        return link

    def open(self, url: str, rel: Release):
        real = mirrored(url, self.mirror)
        try:
            return self.opener.open(real, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise FetchError(
                f"{rel.tool}: {real} answered HTTP {exc.code}; get {rel.tool} {rel.version} from {rel.page}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(
                f"{rel.tool}: could not download {real} ({reason}; offline?). Get {rel.tool} {rel.version} "
                f"from {rel.page} and put it on PATH (or set {rel.tool.upper()}_BIN), or re-run when online"
            ) from None

    def read_text(self, url: str, rel: Release) -> str:
        with self.open(url, rel) as response:
            return response.read(1 << 20).decode("utf-8", errors="replace")

    def download(self, rel: Release, dest: Path) -> str:
        digest = hashlib.sha256()
        with self.open(rel.url, rel) as response, dest.open("wb") as out:
            while chunk := response.read(1 << 16):
                digest.update(chunk)
                out.write(chunk)
        return digest.hexdigest()


def main(argv: list[str] | None = None, env: dict | None = None) -> int:
    env = os.environ if env is None else env
    args = list(sys.argv[1:] if argv is None else argv)
    unknown = [t for t in args if t not in TOOLS]
    if not args or unknown:
        print(
            f"usage: fetch_tools.py TOOL [TOOL...] with TOOL in {' '.join(TOOLS)}"
            + (f" (unknown: {' '.join(unknown)})" if unknown else ""),
            file=sys.stderr,
        )
        return 64
    bin_dir = Path(env.get("CRDB_TOOLS_BIN_DIR") or REPO_ROOT / ".data" / "bin")
    missing = 0
    try:
        plat = env.get("CRDB_TOOLS_PLATFORM") or host_platform()
        if plat not in PLATFORMS:
            raise FetchError(f"CRDB_TOOLS_PLATFORM={plat!r} is not one of {', '.join(PLATFORMS)}")
    except FetchError as exc:
        plat, platform_error = "", str(exc)
    fetcher = Fetcher(
        bin_dir, plat, env.get("CRDB_TOOLS_MIRROR", ""), float(env.get("CRDB_TOOLS_TIMEOUT") or 30), env
    )
    for tool in args:
        try:
            found = fetcher.existing(tool)
            if not found and not plat:
                raise FetchError(f"{tool}: {platform_error}; install it yourself and put it on PATH")
            print(f"{tool} {found or fetcher.get(tool)}", flush=True)
        except FetchError as exc:
            missing += 1
            print(f"missing {exc}", file=sys.stderr, flush=True)
    return 2 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
