"""The ONNX runner for CPython (startup checks, parity checks, tests): onnxruntime on the
CPU, synchronous. The browser's twin is worker/onnx_web.py."""


class CpuRunner:
    is_async = False

    def __init__(self, model_path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # as in the browser: one thread, no contention
        self.session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])

    def zeros(self, shape):
        import numpy

        return numpy.zeros(shape, dtype=numpy.float32)

    def tensor(self, values, shape):
        import numpy

        return numpy.asarray(values, dtype=numpy.float32).reshape(shape)

    def values(self, output):
        return [float(v) for v in output.reshape(-1)]

    def run(self, feeds, wanted):
        return dict(zip(wanted, self.session.run(wanted, feeds), strict=True))
