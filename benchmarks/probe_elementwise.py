"""Probe: how fast CuPy's ElementwiseKernel streams a large array, against a plain RawKernel and memcpy.

    python benchmarks/probe_elementwise.py
"""
import cupy as cp
import numpy as np

from probe_imma import timeit


RAW = r"""
extern "C" __global__ void cast32(const unsigned short* x, signed char* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x[i])); y[i] = (signed char)rintf(f * 20.0f); }
}
extern "C" __global__ void cast_stride(const unsigned short* x, signed char* y, long long n) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x[i])); y[i] = (signed char)rintf(f * 20.0f); }
}
"""


def main():
    for shape in ((256, 112, 112, 64), (64, 112, 112, 64), (8192, 768)):
        x = cp.asarray(np.random.default_rng(0).standard_normal(shape), cp.float16)
        n = x.size
        y = cp.empty(shape, cp.int8)
        mod = cp.RawModule(code=RAW)
        k32, ks = mod.get_function("cast32"), mod.get_function("cast_stride")
        ew = cp.ElementwiseKernel("float16 x", "int8 y", "y = (signed char)rintf((float)x * 20.0f);", "p_cast")
        z = cp.empty_like(x)
        rows = {
            "elementwise": timeit(lambda: ew(x, y)),
            "raw 1/thread": timeit(lambda: k32(((n + 255) // 256,), (256,), (x, y, np.int32(n)))),
            "raw grid-stride": timeit(lambda: ks((132 * 16,), (256,), (x, y, np.int64(n)))),
            "memcpy fp16": timeit(lambda: cp.cuda.runtime.memcpyAsync(z.data.ptr, x.data.ptr, x.nbytes, 3,
                                                                      cp.cuda.get_current_stream().ptr)),
            "x.copy()": timeit(lambda: x.copy()),
        }
        print(shape, {k: round(v, 4) for k, v in rows.items()}, flush=True)


if __name__ == "__main__":
    main()
