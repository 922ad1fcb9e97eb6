"""What one load-engine request does: the same service call an HTTP request would make.

Returns (route, method, status) with the status the HTTP layer would have answered (status_for),
so spike and background traffic land in the same app_requests_total series as real requests.
"""

from __future__ import annotations

import random

from . import services
from .errors import status_for

# First words of the seeded terms (sql/00-bootstrap.sql): prefixes of these find rows.
SEED_WORDS = (
    "amber",
    "basil",
    "cedar",
    "delta",
    "ember",
    "fjord",
    "garnet",
    "harbor",
    "indigo",
    "juniper",
    "kelp",
    "lumen",
    "maple",
    "nectar",
    "onyx",
    "pepper",
    "quartz",
    "raven",
    "saffron",
    "tundra",
    "umber",
    "velvet",
    "willow",
    "xenon",
    "yarrow",
    "zephyr",
)
LOAD_USER_AGENT = "sample-app-load/1"
LOAD_IP = "127.0.0.1"


def make_workload(db, settings):
    rng = random.Random()

    async def workload(kind: str) -> tuple[str, str, int]:
        if kind == "login":
            route, method = "/login", "POST"
            call = services.login(
                db,
                settings.hash_salt,
                f"load-{rng.randrange(100000)}",
                LOAD_IP,
                LOAD_USER_AGENT,
                settings.login_max_retries,
            )
        else:
            route, method = "/search", "GET"
            word = rng.choice(SEED_WORDS)
            call = services.search(db, word[: rng.randint(2, len(word))], settings.search_limit)
        try:
            await call
        except Exception as exc:  # noqa: BLE001 - every failure becomes the status a client would see
            return route, method, status_for(exc)
        return route, method, 200

    return workload
