"""Sorting: the permutation that sorts along a dim, as PyTorch orders it.

sort, argsort and topk are built from it: the sorted values are x gathered at these indices
(functions/indexing.py ``Gather``), so their gradient is gather's -- g sent back to the position
each value came from.
"""
from ..backend import get_array_module


def sort_indices(x, dim=-1, descending=False):
    """int64 indices that sort x along ``dim``, stably (equal values keep their order) and with NaN
    as the largest value, as PyTorch's ``sort(stable=True)``. Descending order sorts the reversed
    array ascending and reverses back, which keeps equal values in their original order."""
    xp = get_array_module(x)
    if x.ndim == 0:
        return xp.zeros((), dtype=xp.int64)
    if not descending:
        return xp.argsort(x, axis=dim, kind="stable").astype(xp.int64, copy=False)
    n = x.shape[dim]
    reversed_order = xp.argsort(xp.flip(x, dim), axis=dim, kind="stable")
    return (n - 1 - xp.flip(reversed_order, dim)).astype(xp.int64, copy=False)
