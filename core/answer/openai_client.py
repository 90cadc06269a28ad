"""The OpenAI client the chat model streams through: the SDK's own, reading chunks faster."""

from __future__ import annotations

from typing import Any, TypeVar

import openai
import pydantic
from openai.types.chat import ChatCompletionChunk

_Response = TypeVar("_Response")


class ChunkValidatingClient(openai.AsyncOpenAI):
    """The SDK's client, reading a streamed chunk with pydantic's compiled validator first.

    The SDK builds each response model with its lenient pure-Python `construct`: ~130 µs a chunk
    here, half the CPU of a streamed chunk, against ~7 µs to validate it. A chunk that does not
    fit the schema (a loosely compatible server) still gets the lenient reading.
    """

    def _process_response_data(
        self, *, data: object, cast_to: type[_Response], response: Any
    ) -> _Response:
        if cast_to is ChatCompletionChunk:
            try:
                return cast_to.model_validate(data)  # type: ignore[attr-defined, no-any-return]
            except pydantic.ValidationError:
                pass
        return super()._process_response_data(data=data, cast_to=cast_to, response=response)
