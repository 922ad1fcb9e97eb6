"""The order dealt for pytest-xdist's work stealing (tests/support/balance.py): a permutation of the tests,
long files whole at the front of the quarters, the bench's files in the first half of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.support import balance
from tests.support.balance import balanced, quarter_sizes


@pytest.fixture(autouse=True)
def apart_until(monkeypatch) -> dict:
    """The session's own record stays as it was (it decides whether this worker starts a bench)."""
    fresh: dict[str, int] = {}
    monkeypatch.setattr(balance, "apart_until", fresh)
    return fresh


@dataclass(frozen=True)
class Item:
    nodeid: str
    fixturenames: tuple[str, ...] = field(default=())


def items_of(spec: dict[str, tuple[int, bool]]) -> list[Item]:
    """{file: (tests, uses the bench)} -> items in file order."""
    return [Item(f"{name}::t{i}", ("bench",) if bench else ())
            for name, (count, bench) in spec.items() for i in range(count)]


SPEC = {"a.py": (90, False), "long1.py": (5, False), "b.py": (20, True), "long2.py": (4, False),
        "benchy.py": (6, True), "c.py": (25, False), "long3.py": (3, True)}
SECONDS = {"a.py": 3, "long1.py": 100, "b.py": 10, "long2.py": 80, "benchy.py": 60, "c.py": 4, "long3.py": 90}


def quarters(order: list[Item], workers: int) -> list[list[Item]]:
    out, start = [], 0
    for size in quarter_sizes(len(order), workers):
        out.append(order[start:start + size])
        start += size
    return out


def test_quarter_sizes_are_the_schedulers():
    assert quarter_sizes(10, 4) == [2, 2, 3, 3] and sum(quarter_sizes(1218, 4)) == 1218


def test_every_test_is_kept_once():
    items = items_of(SPEC)
    order = balanced(items, 4, SECONDS)
    assert sorted(i.nodeid for i in order) == sorted(i.nodeid for i in items)


def test_long_files_are_whole_and_the_bench_stays_in_the_first_half(apart_until):
    order = balanced(items_of(SPEC), 4, SECONDS)
    parts = quarters(order, 4)
    assert apart_until["bench"] == len(parts[0]) + len(parts[1])
    for k, part in enumerate(parts):
        if k >= 2:
            assert not any("bench" in i.fixturenames for i in part), k
    for name in ("long1.py", "long2.py", "long3.py"):
        homes = {k for k, part in enumerate(parts) for i in part if i.nodeid.startswith(name)}
        assert len(homes) == 1, (name, homes)
    # The two long files without the bench land in different quarters of the second half, near their front.
    assert {k for k, part in enumerate(parts) for i in part if i.nodeid.startswith(("long1", "long2"))} == {2, 3}
    assert parts[2][0].nodeid.split("::")[0] in {"long1.py", "long2.py"}


def test_a_quarter_with_the_bench_leads_with_other_tests():
    """While the bench starts (when the quarter has room for them: the suite's bench files fill ~20 %)."""
    parts = quarters(balanced(items_of(SPEC), 4, SECONDS), 4)
    for part in parts[:2]:
        assert "bench" not in part[0].fixturenames


def test_when_the_bench_does_not_fit_half_it_is_not_kept_apart(apart_until):
    order = balanced(items_of({"x.py": (90, True), "y.py": (10, False)}), 4, {"x.py": 50})
    assert "bench" not in apart_until and len(order) == 100
