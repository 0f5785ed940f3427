"""Reading request bodies safely."""

from __future__ import annotations

from starlette.requests import Request

from orchard_core.errors import InvalidInput, PayloadTooLarge, UnsupportedEncoding

__all__ = ["read_limited_body"]


async def read_limited_body(request: Request, limit: int, *, owner: str, setting: str) -> bytes:
    """The request body, read once, refused with 413 as soon as it passes ``limit`` bytes,
    and with 415 when it is compressed.

    The declared ``Content-Length`` is checked first; a chunked body is counted as it
    arrives, so an oversized one is never held in memory whole. ``owner`` ("the gateway")
    and ``setting`` (the environment variable that raises the limit) go in the message.
    """
    # No service here decompresses bodies: a compressed one would be read as garbage (or, at a
    # backend that does decompress, no longer be the body the gateway checked and forwards).
    encodings = [
        part.strip()
        for value in request.headers.getlist("content-encoding")
        for part in value.split(",")
        if part.strip() and part.strip().lower() != "identity"
    ]
    if encodings:
        raise UnsupportedEncoding(
            f"Content-Encoding {', '.join(encodings)!r} is not supported: send the body "
            "uncompressed"
        )
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidInput(f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise _too_large(limit, owner, setting)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit, owner, setting)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, owner: str, setting: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"request body is larger than {owner}'s limit of {limit} bytes ({setting})"
    )
