"""Small conversions between MicroPython values and JS, in one place."""

import json

import js


def now_ms():
    # epoch milliseconds, comparable with the worker's clock
    return _TIME_ORIGIN + js.performance.now()


def to_js(value):
    # A raw MicroPython dict holding a list breaks socket.io-client; go through JSON.
    return js.JSON.parse(json.dumps(value))


def to_py(value):
    if value is None:
        return None
    return json.loads(js.JSON.stringify(value))


# performance.timeOrigin is epoch ms (~1.8e12). When it happens to be a whole number,
# MicroPython's FFI converts it to a 32-bit int and it wraps around; read it through JSON,
# which JS produces exactly, once.
_TIME_ORIGIN = float(to_py(js.performance.toJSON())["timeOrigin"])


def js_get(obj, name):
    """obj[name], or None when the property is missing or undefined."""
    if not js.Reflect.has(obj, name):
        return None
    return getattr(obj, name)


def wait_on(waiters):
    """A promise the caller awaits until someone calls one of `waiters` (resolvers)."""
    return js.Promise.new(lambda resolve, reject: waiters.append(resolve))


def sleep_ms(ms):
    return js.Promise.new(lambda resolve, reject: js.setTimeout(resolve, ms))


def mark(name):
    # performance marks let tests and benchmarks read page milestones
    js.performance.mark("coplay:" + name)


def new_id():
    return str(js.crypto.randomUUID())


def log(*parts):
    js.console.log("[coplay]", " ".join(str(p) for p in parts))


# MicroPython cannot catch an exception that a JS function throws into it: it surfaces as an
# uncaught page error (seen with localStorage's QuotaExceededError). So the one call that may
# legitimately throw goes through this line of JS glue, which turns the throw into False.
_TRY_SET_ITEM = js.Function.new("s", "k", "v",
                                "try { s.setItem(k, v); return true; } catch (e) { return false; }")


def try_set_item(storage, key, value):
    return bool(_TRY_SET_ITEM(storage, key, value))
