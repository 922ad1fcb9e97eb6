"""`python -m tests.real.binary`: the `cockroach` binary the real-cluster suite will use, or one line on getting it.

`make test-real` runs this before pytest: without a binary the suite cannot prove anything, so it stops
with the product's own message (evolution_pipeline/resources/local/binary.py) and a non-zero exit, never
with a skipped suite that looks green.
"""

from __future__ import annotations

import sys

from evolution_pipeline.resources.local import GET_BINARY_MESSAGE, find_cockroach


def missing_message() -> str:
    """One line: what is missing, how to get it (the product's own words) and what to do then: here that is
    running the target again, not the pipeline's advice about make dev and the Dagster UI."""
    return f"make test-real needs the official cockroach binary. {GET_BINARY_MESSAGE} Then run make test-real again."


def main() -> int:
    found = find_cockroach()
    if not found:
        print(missing_message(), file=sys.stderr)
        return 1
    print(found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
