"""Runs passes to a fixed point, validating after each and naming the pass that broke the network."""
from __future__ import annotations

from ..errors import ValidationError, WorkbenchError

MAX_ROUNDS = 20


def run_passes(net, passes, check=None):
    """Apply each `pass(net) -> (net, changed)` in turn, repeating until none changes anything.

    Returns the new network and a log {pass name: times it changed the network}.
    `check(net)` runs after every change (validation by default).
    """
    check = check or (lambda n: n.validate())
    log = {p.__name__: 0 for p in passes}
    for _ in range(MAX_ROUNDS):
        changed_any = False
        for p in passes:
            net, changed = p(net)
            if changed:
                changed_any = True
                log[p.__name__] += 1
                try:
                    check(net)
                except WorkbenchError as e:
                    raise ValidationError(f"optimization pass {p.__name__!r} produced an invalid network: {e}") \
                        from None
        if not changed_any:
            break
    return net, log
