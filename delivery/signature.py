"""HMAC-SHA256 signatures of webhook bodies, Stripe-style: ``t=<unix seconds>,v1=<hex>``.

The signed message is ``f"{t}.".encode() + body``: binding the timestamp stops a captured request
from being replayed later (the receiver rejects timestamps outside its tolerance), and signing the
raw body bytes means the receiver verifies exactly what it received, before parsing it.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Distillguard-Signature"


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={int(timestamp)},v1={_mac(secret, int(timestamp), body)}"


def verify(secret: bytes, body: bytes, header: str, now: float, tolerance: float = 300.0) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``tolerance`` seconds of ``now``."""
    try:
        parts = [p.split("=", 1) for p in header.split(",")]
        fields = [(k.strip(), v.strip()) for k, v in parts]
        ts = int(next(v for k, v in fields if k == "t"))
    except (ValueError, StopIteration):
        return False
    if abs(now - ts) > tolerance:
        return False
    want = _mac(secret, ts, body)
    return any(k == "v1" and hmac.compare_digest(v, want) for k, v in fields)
