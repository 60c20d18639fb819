"""HMAC-SHA256 signing of wire messages (signals with a per-phase key, control calls with the
control key). The signed bytes are the deterministic protobuf serialization of the message with its
signature field cleared, so any change to any field invalidates the signature."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from pathlib import Path

from google.protobuf.message import DecodeError, Message

from titan.v1 import execution_pb2, trading_pb2


def canonical_bytes(msg: Message, signature_field: str = "signature") -> bytes:
    copy = type(msg)()
    copy.CopyFrom(msg)
    copy.ClearField(signature_field)
    return copy.SerializeToString(deterministic=True)


_BLOCK = 64  # SHA-256's block size (RFC 2104: keys are padded to it, longer ones hashed first)
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


class MacKey:
    """HMAC-SHA256 with the key's padded states hashed once: each message then costs two hash
    copies and the hashing of its own bytes (``hmac.digest`` sets the key up again every call)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        block = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(block.translate(_INNER_PAD))
        self._outer = hashlib.sha256(block.translate(_OUTER_PAD))

    def digest(self, data: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@lru_cache(maxsize=1024)
def mac_key(key: bytes) -> MacKey:
    """The prepared :class:`MacKey` of ``key`` (kept for the keys in use)."""
    return MacKey(key)


def _mac(key: bytes, data: bytes) -> bytes:
    return mac_key(key).digest(data)


def signature_matches(key: bytes, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the HMAC-SHA256 of ``data`` under ``key`` (compared in constant time)."""
    return len(signature) == hashlib.sha256().digest_size and hmac.compare_digest(signature, _mac(key, data))


def sign_signal(signal: trading_pb2.Signal, key: bytes) -> trading_pb2.Signal:
    """Set ``signal.signature`` in place and return the signal."""
    signal.signature = _mac(key, canonical_bytes(signal))
    return signal


def verify_signal(signal: trading_pb2.Signal, key: bytes) -> bool:
    return signature_matches(key, canonical_bytes(signal), signal.signature)


def seal_signal(signal: trading_pb2.Signal) -> execution_pb2.SealedSignal:
    """A signed signal as the bytes its signature covers, for the wire (``StreamRequest.sealed``)."""
    return execution_pb2.SealedSignal(phase_id=signal.phase_id, signal_id=signal.signal_id,
                                      signal=canonical_bytes(signal), signature=signal.signature)


def open_sealed(sealed: execution_pb2.SealedSignal, key: bytes | None) -> trading_pb2.Signal | None:
    """The signal ``sealed`` carries (its signature set) when ``key`` signed exactly its bytes and they
    parse into a signal of the phase and id its envelope names, with no signature inside; else None.
    Nothing is parsed before the signature checks."""
    if key is None or not signature_matches(key, sealed.signal, sealed.signature):
        return None
    try:
        signal = trading_pb2.Signal.FromString(sealed.signal)
    except DecodeError:
        return None
    if signal.phase_id != sealed.phase_id or signal.signal_id != sealed.signal_id or signal.signature:
        return None
    signal.signature = sealed.signature
    return signal


def _control_bytes(request: Message) -> bytes:
    copy = type(request)()
    copy.CopyFrom(request)
    auth: execution_pb2.ControlAuth = copy.auth  # type: ignore[attr-defined]
    auth.ClearField("signature")
    return copy.SerializeToString(deterministic=True)


def sign_control(request: Message, key: bytes) -> Message:
    """Sign a control request (anything with an ``auth: ControlAuth`` field) in place."""
    request.auth.signature = _mac(key, _control_bytes(request))  # type: ignore[attr-defined]
    return request


def verify_control(request: Message, key: bytes) -> bool:
    return signature_matches(key, _control_bytes(request), request.auth.signature)  # type: ignore[attr-defined]


def load_keys(directory: Path) -> dict[str, bytes]:
    """Read ``<name>.key`` files (e.g. a mounted Kubernetes Secret) into {name: key bytes}."""
    keys: dict[str, bytes] = {}
    for path in sorted(directory.glob("*.key")):
        raw = path.read_bytes().strip()
        if len(raw) < 16:
            raise ValueError(f"HMAC key {path} is shorter than 16 bytes")
        keys[path.stem] = raw
    return keys
