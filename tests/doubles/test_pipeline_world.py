"""The world file (tests/doubles/pipeline_world.py): world() rewrites it in place, and every read returns what
the file holds now, whole."""

from __future__ import annotations

import json
import threading

from tests.doubles.pipeline_world import new_world, read_world, world


def test_a_rewrite_leaves_exactly_the_new_state(tmp_path):
    path = new_world(tmp_path / "world.json")
    with world(path) as s:
        s["calls"] = {f"op{i}": i for i in range(50)}  # longer
    assert path.read_bytes() == json.dumps(read_world(path)).encode()
    with world(path) as s:
        s["calls"] = {}  # much shorter: nothing of the longer text may remain
        s["desired"] = 3
    assert path.read_bytes() == json.dumps({"desired": 3, "ready": 0, "polls_until_ready": 0,
                                            "ready_after_polls": 1, "calls": {}}).encode()
    assert read_world(path)["desired"] == 3


def test_every_read_sees_the_latest_write(tmp_path):
    path = new_world(tmp_path / "world.json")
    for n in range(1, 30):  # many writes within one clock tick: each read still sees the last one
        with world(path) as s:
            s["desired"] = n
        assert read_world(path)["desired"] == n


def test_a_read_gets_its_own_copy(tmp_path):
    path = new_world(tmp_path / "world.json")
    read_world(path)["calls"]["status"] = 99
    assert read_world(path)["calls"] == {}


def test_readers_never_see_a_half_written_file(tmp_path):
    path = new_world(tmp_path / "world.json")
    stop, seen, errors = threading.Event(), [], []

    def read():
        while not stop.is_set():
            try:
                seen.append(len(read_world(path)["calls"]))
            except Exception as exc:  # noqa: BLE001 - a torn read is what this test looks for
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(200):  # the file grows and shrinks under the reader
            with world(path) as s:
                s["calls"] = {f"op{i}": i for i in range(n % 7 * 10)}
    finally:
        stop.set()
        reader.join()
    assert not errors and seen
    assert set(seen) <= {n % 7 * 10 for n in range(200)} | {0}
