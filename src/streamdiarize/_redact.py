"""A logging filter that hides credentials in the WebSocket layer's handshake dumps.

At DEBUG level the ``websockets`` protocol logs every handshake header as ``< Name: value``:
the Speech key (``Ocp-Apim-Subscription-Key``), bearer tokens and the demo server's token (a
``streamdiarize.token.<token>`` subprotocol) included. The demo server (uvicorn's
``uvicorn.error`` logger) and the emulator (``streamdiarize.testing``) install this filter on
the logger they hand to ``websockets``. The request line (``< GET /path?query HTTP/1.1``) is
cleaned too: the JavaScript Speech SDK repeats its key or token as query parameters.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactSecrets", "redact_secrets"]

_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "ocp-apim-subscription-key", "cookie", "set-cookie"}
)
_TOKEN = re.compile(r"(streamdiarize\.token\.)[^\s,]+")
_QUERY_SECRET = re.compile(r"([?&](?:ocp-apim-subscription-key|authorization)=)[^&\s#]*", re.I)
REDACTED = "[redacted]"


class RedactSecrets(logging.Filter):
    """Replaces secret header values in ``"< %s: %s"``-style records; passes every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(record.msg, str)
            and record.msg.endswith("%s: %s")
        ):
            name, value = args
            if str(name).lower() in _SECRET_HEADERS:
                record.args = (name, REDACTED)
            elif isinstance(value, str) and "streamdiarize.token." in value:
                record.args = (name, _TOKEN.sub(rf"\g<1>{REDACTED}", value))
        elif isinstance(args, tuple) and any(isinstance(a, str) and "=" in a for a in args):
            record.args = tuple(
                _QUERY_SECRET.sub(rf"\g<1>{REDACTED}", a) if isinstance(a, str) else a for a in args
            )
        return True


def redact_secrets(logger: logging.Logger) -> None:
    """Install :class:`RedactSecrets` on ``logger`` (once)."""
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
