"""Turn whatever an env returns into plain JSON data, and hash env state.

Nothing that crosses the channel may be a proxy or a numpy object: results are
converted here, inside the worker, before they are encoded.
"""

import hashlib
import json
import math
import random

HASH_CHARS = 16


def _float(value):
    value = float(value)  # numpy.float64 is a float subclass: make it plain
    if math.isfinite(value):
        return value
    # JSON has no NaN/Infinity and JS's JSON.parse rejects them.
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _key(key):
    """JSON object keys are strings: 3 -> "3", (1, 2) -> "[1,2]"."""
    if isinstance(key, str):
        return key
    plain = safe_serialize(key)
    return plain if isinstance(plain, str) else json.dumps(plain, separators=(",", ":"))


def safe_serialize(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        # numpy scalars become Python scalars, arrays nested lists.
        return safe_serialize(value.tolist())
    if type(value).__module__.startswith("numpy.random"):
        # a Generator (e.g. a Gymnasium env's np_random) prints without its state: hash that
        return safe_serialize(_numpy_rng_state(value))
    if isinstance(value, dict):
        return {_key(k): safe_serialize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if all(type(v) is int for v in value):  # fast path: RNG states, grids
            return list(value)
        return [safe_serialize(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [safe_serialize(v) for v in value]
        try:
            items.sort()
        except TypeError:
            items.sort(key=repr)
        return items
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, random.Random):
        return safe_serialize(value.getstate())
    if hasattr(value, "to_py"):  # a Pyodide JsProxy
        return safe_serialize(value.to_py())
    if callable(value) and hasattr(value, "__qualname__"):
        # a class or function (e.g. a Gymnasium spec's entry point) is its name: its
        # attributes print with memory addresses, which differ from one runtime to the next
        return getattr(value, "__module__", "") + "." + value.__qualname__
    if hasattr(value, "__dict__"):
        return safe_serialize(vars(value))
    slots = getattr(type(value), "__slots__", None)
    if slots is not None:
        names = (slots,) if isinstance(slots, str) else slots
        return {name: safe_serialize(getattr(value, name, None)) for name in names}
    return str(value)


def _numpy_rng_state(rng):
    if hasattr(rng, "bit_generator"):  # Generator
        return rng.bit_generator.state
    if hasattr(rng, "get_state"):  # legacy RandomState
        return rng.get_state()
    return getattr(rng, "state", str(rng))  # a bare BitGenerator


def canonical_json(value):
    return json.dumps(safe_serialize(value), sort_keys=True, separators=(",", ":"))


def state_hash(state):
    """Short, stable hash of an env state: equal states hash equal in CPython and Pyodide."""
    return hashlib.sha256(canonical_json(state).encode()).hexdigest()[:HASH_CHARS]
