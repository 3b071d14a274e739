"""What the journal keeps of an answer: its headers and the first bytes of its body (a
whole body of up to `KEPT` bytes is kept by reference, not copied), with the body's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from mockserver.masking import mask

KEPT = 4096  # bytes of an answer's body the journal keeps


class Answer(NamedTuple):  # a tuple: made on every request, it must cost next to nothing
    headers: Sequence[tuple[str, str]]  # as sent (the list given to start_response, not copied)
    body: bytes  # at most KEPT bytes
    size: int | None  # the whole body's size; None for a stream (sent as it was made)


def kept(headers: Sequence[tuple[str, str]], body: bytes | None) -> Answer:
    """The answer as the journal keeps it (`body` None: a streamed answer)."""
    if body is None:
        return Answer(headers, b"", None)
    size = len(body)
    return Answer(headers, body if size <= KEPT else body[:KEPT], size)


def answer_json(answer: Answer) -> dict[str, Any]:
    """The answer as the journal shows it: the body as JSON when it parses whole, else text."""
    truncated = answer.size is None or answer.size > len(answer.body)
    body: Any = None
    if answer.body:
        try:
            body = orjson.loads(answer.body) if not truncated else None
        except orjson.JSONDecodeError:
            body = None
        if body is None:
            body = answer.body.decode("utf-8", "replace")
    return {
        "headers": {name: mask(name, value) for name, value in answer.headers},
        "body": body,
        "bodySize": answer.size,
        "bodyTruncated": truncated,
    }
