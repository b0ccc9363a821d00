"""One way to check an event payload against its schema, whichever library defines it:
pydantic models (most events) or msgspec Structs (the per-step hot path)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from pydantic import BaseModel, ValidationError


class Invalid(ValueError):
    """The payload does not match its schema; the message names the field."""


def pydantic_problem(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors()[:5])


def validate(model: type, data: Any) -> Any:
    """Return `data` as an instance of `model`; a JSON string is decoded first."""
    if issubclass(model, BaseModel):
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise Invalid(f"not JSON: {exc}") from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise Invalid(pydantic_problem(exc)) from None
    try:
        if isinstance(data, str):  # the page sends step batches as JSON text: decode and check in one pass
            return msgspec.json.decode(data, type=model, strict=True)
        return msgspec.convert(data, model, strict=True)
    except msgspec.ValidationError as exc:  # (a subclass of DecodeError: caught first)
        message = str(exc)
        # name the field like pydantic does: "... - at `payload.frame`", or the payload itself
        raise Invalid(message.replace("`$", "`payload") if " - at `$" in message
                      else f"payload: {message}") from None
    except msgspec.DecodeError as exc:
        raise Invalid(f"not JSON: {exc}") from None


def dump(payload: Any) -> Any:
    """A validated payload back to plain JSON-able data (to forward it to another process)."""
    if isinstance(payload, BaseModel):
        return payload.model_dump()
    return msgspec.to_builtins(payload)
