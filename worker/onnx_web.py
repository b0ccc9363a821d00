"""The ONNX runner in the browser: onnxruntime-web (vendored, served from our origin) in the
env's worker, loaded by the page's worker config (``[js_modules.worker] ... = "ort"``) only
when the experiment seats an ONNX policy. Its API is async: a decision is awaited while the
page's frames go on. The CPython twin is worker/onnx_cpython.py."""

import js
from pyodide.ffi import to_js

from worker.packages import absolute_url

_ort = []


def ort_module(wasm_base):
    """onnxruntime-web, configured once: one thread (more needs a worker pool of its own),
    and its .wasm from our origin (a blob: worker cannot resolve a relative URL)."""
    if not _ort:
        from pyscript.js_modules import ort

        ort.env.wasm.numThreads = 1
        ort.env.wasm.wasmPaths = absolute_url(wasm_base, str(js.location.origin))
        _ort.append(ort)
    return _ort[0]


class WebRunner:
    is_async = True

    def __init__(self, model_path, wasm_base):
        self.model_path = model_path
        self.ort = ort_module(wasm_base)
        self.session = None

    async def open(self):
        """The session, from the model file the worker fetched into its file system."""
        with open(self.model_path, "rb") as fh:
            data = fh.read()
        self.session = await self.ort.InferenceSession.create(to_js(data))

    def zeros(self, shape):
        n = 1
        for d in shape:
            n *= d
        return self.tensor([0.0] * n, shape)

    def tensor(self, values, shape):
        return self.ort.Tensor.new("float32", js.Float32Array.new(to_js(values)), to_js(list(shape)))

    def values(self, output):
        return output.data.to_py().tolist()

    async def run_async(self, feeds, wanted):
        results = await self.session.run(to_js(feeds, dict_converter=js.Object.fromEntries))
        return {name: js.Reflect.get(results, name) for name in wanted}
