"""EXAMPLE ONLY: shows the pattern; the elementwise module replaces it."""
from ..ops import op
from ..rules import broadcast_of, same_as


@op("Relu", since=14)
def relu(x):
    return same_as(x)


@op("Add", since=14)
def add(a, b):
    return broadcast_of(a, b)
