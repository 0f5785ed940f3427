"""Fast JSON responses (orjson, numpy-aware) for hot paths."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["JSON_MEDIA_TYPE", "json_response"]

JSON_MEDIA_TYPE = "application/json"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """Serialize ``content`` with orjson (numpy arrays included) into a JSON response."""
    return Response(
        content=orjson.dumps(content, option=_OPTIONS),
        status_code=status_code,
        media_type=JSON_MEDIA_TYPE,
        headers=headers,
    )
