"""worker/serialize.py with real numpy: results become plain JSON data; state hashes are stable."""

import json
import random

import numpy as np
import pytest

from worker.serialize import HASH_CHARS, canonical_json, safe_serialize, state_hash

PLAIN = (type(None), bool, int, float, str)


def assert_plain(value, path="$"):
    """Recursively: only exact JSON types (no numpy, no subclasses, no tuples)."""
    if isinstance(value, dict):
        assert type(value) is dict, path
        for key, item in value.items():
            assert type(key) is str, f"{path}: key {key!r} is {type(key)}"
            assert_plain(item, f"{path}.{key}")
    elif isinstance(value, list):
        assert type(value) is list, path
        for i, item in enumerate(value):
            assert_plain(item, f"{path}[{i}]")
    else:
        assert type(value) in PLAIN, f"{path}: {type(value)} ({value!r})"


def plain_json(value):
    out = safe_serialize(value)
    assert_plain(out)
    json.dumps(out, allow_nan=False)  # raises on NaN/inf or unknown types
    return out


@pytest.mark.parametrize("value, expected", [
    (np.int64(7), 7),
    (np.int32(-3), -3),
    (np.uint8(255), 255),
    (np.float32(0.5), 0.5),
    # np.float64 subclasses float; it must still come out as a plain float (known bug).
    pytest.param(np.float64(2.25), 2.25, id="float64"),
    (np.bool_(True), True),
    (np.bool_(False), False),
])
def test_numpy_scalars_become_python_scalars(value, expected):
    out = plain_json(value)
    assert out == expected
    assert type(out) is type(expected)


def test_two_dimensional_array():
    arr = np.arange(6, dtype=np.int64).reshape(2, 3)
    assert plain_json(arr) == [[0, 1, 2], [3, 4, 5]]
    farr = np.array([[0.5, 1.5], [2.5, 3.5]], dtype=np.float32)
    assert plain_json(farr) == [[0.5, 1.5], [2.5, 3.5]]
    assert plain_json(np.array([True, False])) == [True, False]


def test_arrays_inside_dicts_and_tuples():
    value = {"grid": np.zeros((2, 2), dtype=np.int8), "pair": (np.int64(1), np.float32(2.0)),
             "nested": [{"v": np.array([1.0, np.nan])}]}
    assert plain_json(value) == {"grid": [[0, 0], [0, 0]], "pair": [1, 2.0],
                                 "nested": [{"v": [1.0, "NaN"]}]}


def test_dict_keys_become_strings():
    out = plain_json({1: "a", (1, 2): "b", np.int64(3): "c", None: "d", 2.5: "e"})
    assert out == {"1": "a", "[1,2]": "b", "3": "c", "null": "d", "2.5": "e"}


def test_sets_become_sorted_lists():
    assert plain_json({3, 1, 2}) == [1, 2, 3]
    assert plain_json(frozenset({"b", "a"})) == ["a", "b"]
    mixed = plain_json({1, "a", (2, 3)})
    assert sorted(map(repr, mixed)) == sorted(map(repr, [1, "a", [2, 3]]))
    assert plain_json({1, "a", (2, 3)}) == mixed  # deterministic order


@pytest.mark.parametrize("value, expected", [
    (float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity"),
    (np.float64("nan"), "NaN"), (np.float32("inf"), "Infinity"), (np.float64("-inf"), "-Infinity"),
])
def test_non_finite_floats_become_strings(value, expected):
    assert plain_json(value) == expected
    assert plain_json({"x": [value]}) == {"x": [expected]}


def test_bytes_become_hex():
    assert plain_json(b"\x00\xffA") == "00ff41"
    assert plain_json(bytearray(b"\x10")) == "10"


def test_random_state_is_serialized_and_tracks_the_generator():
    rng = random.Random(5)
    first = plain_json(rng)
    assert isinstance(first, list) and len(json.dumps(first)) > 1000
    assert plain_json(random.Random(5)) == first
    rng.random()
    assert plain_json(rng) != first


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y
        self.tags = {"k"}
        self.arr = np.array([x, y])


def test_objects_with_dict_are_serialized_by_attributes():
    assert plain_json(Point(1, 2)) == {"x": 1, "y": 2, "tags": ["k"], "arr": [1, 2]}
    assert plain_json([Point(np.int64(3), 4.5)]) == [{"x": 3, "y": 4.5, "tags": ["k"], "arr": [3.0, 4.5]}]


def test_plain_values_pass_through():
    value = {"a": [1, 2.5, "s", None, True], "b": {"c": -1}}
    assert plain_json(value) == value


def test_everything_at_once_survives_strict_json():
    state = {
        "rng": random.Random(1), "grid": np.ones((3, 3)), "score": np.int64(4),
        "seen": {(0, 1), (1, 0)}, "blob": b"xy", "bad": [float("nan"), np.float32("-inf")],
        "objs": (Point(0, 0),), 5: np.bool_(False),
    }
    text = json.dumps(plain_json(state), allow_nan=False)
    assert '"5": false' in text


# -- state_hash ---------------------------------------------------------------

def test_hash_is_sixteen_hex_chars():
    h = state_hash({"x": 1})
    assert len(h) == HASH_CHARS == 16
    int(h, 16)


def test_equal_states_hash_equal():
    a = {"pos": np.array([1, 2]), "rng": random.Random(3), "score": 1}
    b = {"pos": np.array([1, 2]), "rng": random.Random(3), "score": 1}
    assert state_hash(a) == state_hash(b)
    # numpy and Python values with the same content hash the same
    assert state_hash({"v": np.int64(1), "w": np.float32(0.5)}) == state_hash({"v": 1, "w": 0.5})


def test_different_states_hash_differently():
    base = {"pos": [1, 2], "score": 1}
    assert state_hash(base) != state_hash({"pos": [1, 2], "score": 2})
    assert state_hash(base) != state_hash({"pos": [2, 1], "score": 1})
    assert state_hash(base) != state_hash({"pos": [1, 2], "score": 1, "extra": None})
    assert state_hash({"r": random.Random(1)}) != state_hash({"r": random.Random(2)})


def test_dict_insertion_order_does_not_matter():
    a = {"a": 1, "b": {"x": 1, "y": 2}, 3: "c"}
    b = {3: "c", "b": {"y": 2, "x": 1}, "a": 1}
    assert list(a) != list(b)
    assert state_hash(a) == state_hash(b)
    assert canonical_json(a) == canonical_json(b)


def test_set_iteration_order_does_not_matter():
    a = set(range(100))
    b = set(reversed(range(100)))
    assert state_hash({"s": a}) == state_hash({"s": b})
