"""Alert delivery: which contract alerts page humans (pure policy) and how a webhook payload is signed.

No I/O here: the Faust shell is ``streams/delivery.py``, the HTTP sink ``streams/webhook.py``.
"""

from delivery.policy import NotificationPolicy, PolicyConfig
from delivery.signature import SIGNATURE_HEADER, sign, verify

__all__ = ["NotificationPolicy", "PolicyConfig", "SIGNATURE_HEADER", "sign", "verify"]
