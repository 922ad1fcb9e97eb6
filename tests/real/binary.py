"""`python -m tests.real.binary`: the `cockroach` binary the real-cluster suite will use, or one line on getting it.

`make test-real` runs this before pytest: without a binary the suite cannot prove anything, so it stops
with the product's own message (evolution_pipeline/resources/local/binary.py) and a non-zero exit, never
with a skipped suite that looks green.
"""

from __future__ import annotations

import sys

from evolution_pipeline.resources.local import MISSING_BINARY_MESSAGE, find_cockroach

def missing_message() -> str:
    """One line: what is missing and how to get it (the product's own message)."""
    return f"make test-real needs the official cockroach binary. {MISSING_BINARY_MESSAGE}"


def main() -> int:
    found = find_cockroach()
    if not found:
        print(missing_message(), file=sys.stderr)
        return 1
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
