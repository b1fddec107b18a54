"""WireGuard key pairs, generated fresh for every run.

The private half never prints: its repr is redacted, and only config rendering reads it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)


@dataclass(frozen=True)
class KeyPair:
    """A Curve25519 key pair in WireGuard's base64 form."""

    public: str
    private: str = field(repr=False)

    def __str__(self) -> str:
        return f"KeyPair(public={self.public})"

    @classmethod
    def generate(cls) -> KeyPair:
        key = X25519PrivateKey.generate()
        private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(public=base64.b64encode(public).decode(), private=base64.b64encode(private).decode())

    @staticmethod
    def public_of(private: str) -> str:
        """The public key that belongs to a base64 private key (what `wg pubkey` prints)."""
        key = X25519PrivateKey.from_private_bytes(base64.b64decode(private))
        return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
