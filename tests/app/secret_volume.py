"""A Secret volume updated the way the kubelet updates it, for the credential-following tests.

kubernetes/kubernetes pkg/volume/util/atomic_writer.go AtomicWriter.Write: the payload goes into a new
timestamped directory `..<UTC timestamp>.<random>`; each user-visible key is a symlink `<key> -> ..data/<key>`;
a symlink `..data_tmp` to the new directory is renamed onto `..data` (rename is atomic), then the previous
timestamped directory is removed. A reader of `<key>` sees the old content or the new, never a mix.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"


class SecretVolume:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> str:
        return str(self.root / key)

    def write(self, payload: dict[str, str]) -> None:
        data_link = self.root / DATA_DIR
        old = os.readlink(data_link) if data_link.is_symlink() else None
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        ts_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=self.root))  # (5)
        ts_dir.chmod(0o755)
        for key, content in payload.items():  # (6)
            (ts_dir / key).write_text(content)
            (ts_dir / key).chmod(0o644)
        for key in payload:  # (7) user-visible symlinks through ..data, created once
            visible = self.root / key
            if not visible.is_symlink():
                visible.symlink_to(Path(DATA_DIR) / key)
        tmp_link = self.root / NEW_DATA_DIR  # (8)
        tmp_link.symlink_to(ts_dir.name)
        os.rename(tmp_link, data_link)  # (9) atomic
        if old:  # (11)
            for f in (self.root / old).iterdir():
                f.unlink()
            (self.root / old).rmdir()
