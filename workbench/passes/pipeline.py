"""The builder's optimization pipeline: which passes run, in which order."""
from __future__ import annotations

from .eliminate_dead_layers import eliminate_dead_layers
from .fuse_attention import fuse_attention
from .fold_batchnorm import fold_batchnorm
from .fold_constants import fold_constants
from .fuse_bias_activation import fuse_bias_activation
from .fuse_gelu import fuse_gelu
from .fuse_layernorm import fuse_layernorm
from .fuse_residual_layernorm import fuse_residual_layernorm
from .infer import infer
from .inline_if import inline_if
from .manager import run_passes
from .pack_qkv import pack_qkv
from .static_reshape import static_reshape

# Folding first, so that patterns see constants and the shape arithmetic of exports dies (an If on a
# condition folding made constant is inlined right after, and its branch folded in turn); then
# the pattern fusions that make ONNX ops (LayerNormalization, Gelu) and fold BN into matrix ops;
# then the epilogue fusion, which takes the Gelu and the biases the earlier passes leave behind;
# last attention, whose pattern starts at the (by then fused) Q/K/V projections' outputs (then packed
# into one product), and the residual Adds folded into the norms after them.
PASSES: list = [fold_constants, inline_if, static_reshape, eliminate_dead_layers, fuse_layernorm, fuse_gelu,
                fold_batchnorm, fuse_bias_activation, fuse_attention, pack_qkv, fuse_residual_layernorm]


def optimize(net):
    """The optimized copy of `net` and the log of passes that changed it; shapes re-inferred."""
    net, log = run_passes(net, PASSES)
    infer(net)
    return net, log
