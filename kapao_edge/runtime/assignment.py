"""Minimum-cost one-to-one assignment (the Hungarian method), in NumPy.

SciPy is not a dependency of the package, and a tracker only ever assigns a few dozen people, so a
small O(n^2 m) shortest-augmenting-path solver with row and column potentials is enough.
"""

from __future__ import annotations

import numpy as np


def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost matching of size min(R, C), rows in increasing order.

    ``cost`` is (R, C) and finite. The result is deterministic: on equal costs the lower column index
    is taken first.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be 2-D, got shape {cost.shape}")
    rows, cols = cost.shape
    if rows == 0 or cols == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty
    if not np.isfinite(cost).all():
        raise ValueError("cost must be finite")
    if rows > cols:  # the solver needs rows <= columns
        c, r = linear_assignment(cost.T)
        order = np.argsort(r, kind="stable")
        return r[order], c[order]

    # 1-based arrays with a virtual column 0, as in the classic formulation.
    u = np.zeros(rows + 1)  # row potentials
    v = np.zeros(cols + 1)  # column potentials
    owner = np.zeros(cols + 1, np.int64)  # owner[j]: row matched to column j (0 = free)
    way = np.zeros(cols + 1, np.int64)  # previous column on the augmenting path
    for i in range(1, rows + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(cols + 1, np.inf)  # (C + 1,) best reduced cost reaching each column
        used = np.zeros(cols + 1, bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used[1:]  # (C,)
            reduced = cost[i0 - 1] - u[i0] - v[1:]  # (C,)
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1  # first minimum: ties go to the lower column
            delta = candidates[j1 - 1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    matched = np.nonzero(owner[1:])[0]  # columns with an owner
    r = owner[1:][matched] - 1
    order = np.argsort(r, kind="stable")
    return r[order].astype(np.int64), matched[order].astype(np.int64)
