"""Secrets out of anything shown: URLs and the messages libpq and psycopg make from them.

A database URL carries its password, an OTLP endpoint may carry user info, and libpq quotes the offending
part of a URL it cannot parse ("invalid percent-encoded token: "pa%zz..."" is the password itself). Every
URL and every error that may contain one is passed through here before it reaches the log, /readyz, an
error message or stderr.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MASK = "***"
# user:password@ in any URL-looking text (the password ends at the last @ before the host).
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^\s]*)@")
# password=... in a libpq query string or keyword/value connection string.
_PASSWORD_PARAM = re.compile(r"(?i)(\b(?:password|sslpassword)\s*=\s*)('[^']*'|[^&\s]+)")


def url(value: str) -> str:
    """`value` with the password of its user info and any password= parameter replaced by ***."""
    value = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value)
    return _PASSWORD_PARAM.sub(lambda m: m.group(1) + MASK, value)


def secrets_of(value: str) -> list[str]:
    """The secret strings of a URL as they may be quoted back (raw and percent-decoded), longest first."""
    found: list[str] = []
    match = _USERINFO.search(value)
    if match and match["pw"]:
        found.append(match["pw"])
    else:
        try:
            if pw := urlsplit(value).password:
                found.append(pw)
        except ValueError:
            pass
    found += [m.group(2).strip("'") for m in _PASSWORD_PARAM.finditer(value)]
    found += [unquote(s) for s in found]
    return sorted({s for s in found if s}, key=len, reverse=True)


def text(message: str, *urls: str) -> str:
    """`message` (an error, a log line) with every secret of `urls` and any URL's password masked."""
    for source in urls:
        for secret in secrets_of(source):
            message = message.replace(secret, MASK)
    return url(message)
