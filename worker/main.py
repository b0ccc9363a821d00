"""Entry point of the env runtime in Pyodide.

In a PyScript worker it talks over the worker's own channel (``polyscript.xworker``);
in the ``?worker=0`` baseline it runs on the main thread and talks over a
MessageChannel whose other port it publishes as ``window.coplayEnvPort``. Either way
the page sees the same asynchronous channel: JSON strings, and for a reply carrying RGB
frames the array ``[json_text, pixels...]`` (see protocol.messages.IMAGE)."""

import asyncio

import js
from pyodide.ffi import create_proxy

from worker.dispatcher import Dispatcher
from worker.packages import absolute_url, install_packages


def clock():
    # Epoch milliseconds, comparable between the worker and the page (performance.now()
    # alone has a per-context origin).
    return js.performance.timeOrigin + js.performance.now()


IN_WORKER = str(js.self.constructor.name) == "DedicatedWorkerGlobalScope"

if IN_WORKER:
    # PyScript delivers worker messages by evaluating `xworker.onmessage` in this
    # module's globals, so the name must be exactly `xworker`.
    from polyscript import xworker

    _endpoint = xworker
else:
    _pair = js.MessageChannel.new()
    _endpoint = _pair.port2

_tasks = set()


def _post(text):
    _endpoint.postMessage(text)


async def fetch_bytes(url):
    """An env file from our own origin (a blob-URL worker cannot resolve a relative URL)."""
    from pyodide.http import pyfetch

    response = await pyfetch(absolute_url(url, str(js.location.origin)))
    if not response.ok:
        raise RuntimeError("could not load " + url + ": HTTP " + str(response.status))
    return await response.bytes()


def _pixels(rgba):
    # one copy out of Pyodide's heap into a buffer of its own, which can then be transferred
    array = js.Uint8ClampedArray.new(len(rgba))
    array.assign(rgba)
    return array


def _post_frames(text, frames):
    arrays = [_pixels(rgba) for rgba in frames]
    # the buffers are moved to the page (transfer list), not cloned a second time
    _endpoint.postMessage(js.Array.of(text, *arrays), js.Array.of(*[a.buffer for a in arrays]))


def onnx_runner(model_path, options):
    # imported only when an experiment seats an ONNX policy (its page loads onnxruntime-web)
    from worker.onnx_web import WebRunner

    return WebRunner(model_path, options.get("onnx_wasm") or "")


dispatcher = Dispatcher(_post, clock, installer=install_packages, fetcher=fetch_bytes,
                        post_frames=_post_frames, onnx_runner=onnx_runner,
                        runtime="pyodide-worker" if IN_WORKER else "pyodide-main")


def _on_message(event):
    coro = dispatcher.handle_text(event.data)
    if coro is not None:
        # started at once, not on the loop's next turn: an AI decision begins as soon as
        # the step's reply is posted (its first await is the model's own Promise)
        task = asyncio.Task(coro, loop=asyncio.get_event_loop(), eager_start=True)
        _tasks.add(task)  # keep a reference until done
        task.add_done_callback(_tasks.discard)


_endpoint.onmessage = create_proxy(_on_message)
if not IN_WORKER:
    js.window.coplayEnvPort = _pair.port1
dispatcher.announce_ready()
