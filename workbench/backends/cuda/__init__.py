"""The CUDA backend: CuPy arrays, cuDNN frontend graphs, cuBLAS(Lt) and NVRTC-generated kernels.

Only this package imports cupy (and cudnn, nvmath); `backend.py` is what `get_backend("cuda")` loads.
Layout of the package:
    device.py     CuPy, the device, streams, capture, shared weights  (the one `import cupy`)
    site.py       Site: one layer at concrete shapes, as a tactic sees it; dtypes, tolerances
    tactics.py    the tactic registry: which implementations a layer may use
    generic.py    the CPU kernel run on CuPy arrays, and the host round trip (every op)
    pointwise.py  fused elementwise kernels generated from recipes (NVRTC via CuPy)
    rows.py       row-wise LayerNorm and Softmax kernels generated from recipes
    conv.py       convolution: cuDNN frontend graphs (fused bias/activation/residual), tap-GEMMs
    gemm.py       MatMul / Gemm: cuBLAS through CuPy, cuBLASLt epilogues through nvmath
    timing.py     timing candidates with CUDA events over graph replays; the on-disk timing cache
    select.py     the build-time search: run, verify and time candidates layer by layer
    runner.py     the runtime: per-shape kernels, CUDA-graph capture and replay, profiler, memory
"""
