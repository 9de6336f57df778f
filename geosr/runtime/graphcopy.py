"""Copies of a dask graph whose reads wait for another task: how geosr keeps dask from reading ahead.

dask runs every ready task when a thread is free, and the reads at a graph's roots are always
ready. Where work must wait (the tiles for the scene model, a band of tiles for the bands before
it), the reads under it are copied under keys of their own whose roots depend on the task to
wait for. dask.graph_manipulation.bind means to do this, but its layer by layer copy left some
keys of rioxarray's reads and masks unrenamed (missing dependencies at compute, or reads shared
with the original and free to run ahead), so the copy is made here task by task.
"""
from __future__ import annotations


def tasks_of(array) -> dict:
    """The low-level tasks of a dask collection, as dask's task objects (key -> node)."""
    import copy

    from dask._task_spec import convert_legacy_graph

    tasks = {}
    for layer in array.__dask_graph__().layers.values():
        # Through a copy: a Blockwise layer keeps what it materialises, and the graph would hold
        # those tasks as long as it lives (0.15 GB for a 160000 x 160000 guide).
        tasks.update(copy.copy(layer))
    return convert_legacy_graph(tasks)


def needed(tasks: dict, keys, stop=()) -> dict:
    """The tasks among ``tasks`` that ``keys`` need (themselves included), not looking past keys in ``stop``."""
    out, todo = {}, list(keys)
    while todo:
        key = todo.pop()
        if key in out or key in stop:
            continue
        node = tasks[key]
        out[key] = node
        todo.extend(d for d in node.dependencies if d not in out and d not in stop)
    return out


def renamer(tag: str):
    """The key a copy suffixed ``tag`` gives each key."""
    names = {}  # one string per name, shared by all its keys

    def name_of(name):
        if name not in names:
            names[name] = f"{name}-{tag}"
        return names[name]

    def renamed(key):
        return (name_of(key[0]), *key[1:]) if isinstance(key, tuple) else name_of(key)
    return renamed


class BandedCopy:
    """One copy of a graph, made band by band: a task is copied in the first band that needs it,
    and the tasks copied there that need nothing else copied there wait for that band's gate. Later bands
    reuse what earlier ones copied, so each chunk is read once, and the copy is the graph's
    size at most however many bands there are."""

    def __init__(self, tasks: dict, tag: str):
        self.tasks, self.renamed, self.owner = tasks, renamer(tag), {}

    def band(self, keys, gate=None) -> dict:
        """The tasks ``keys`` need that no earlier band has, copied under new keys waiting for ``gate``
        (or, with no gate, left as they are: none copied). Then :meth:`key` gives each key's copy."""
        from dask._task_spec import Task, TaskRef

        new = needed(self.tasks, [k for k in keys if k not in self.owner], stop=self.owner)
        for key in new:
            self.owner[key] = key if gate is None else self.renamed(key)
            del self.tasks[key]  # never looked at again: let it go as the copy grows
        if gate is None:
            return {}
        copy = {}
        for key, node in new.items():
            deps = node.dependencies
            moved = node.substitute({d: self.owner[d] for d in deps}, key=self.owner[key])
            # The band's own roots: tasks that need nothing copied in this band (a chunk read
            # needs only the file handle, which an earlier band has) wait for the gate.
            starts = not any(d in new for d in deps)
            copy[self.owner[key]] = Task(self.owner[key], _first, moved, TaskRef(gate)) if starts else moved
        return copy

    def key(self, key):
        return self.owner[key]


def _first(value, _after):
    return value
