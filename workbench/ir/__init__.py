"""The intermediate representation: Network, Tensor, Layer, op specs and shape inference."""
from .network import Layer, Network, Tensor

__all__ = ["Layer", "Network", "Tensor"]
