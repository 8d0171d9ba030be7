"""Port of upstream ``lunzi/dataset.py`` + ``slbo/utils/dataset.py``: a fixed-size ring buffer of records.

Upstream subclasses ``np.recarray`` directly; with NumPy 2 a recarray subclass carrying
ring-buffer state is fragile, so the port wraps a recarray instead. Semantics are
upstream's: ``append``/``extend`` overwrite the oldest records once ``max_size`` is
reached, ``len()`` is the number of valid records, field access (``ds.state``) returns
the valid records in storage order, ``sample_multi_step`` draws start indices uniformly
and reads ``n_step`` consecutive records modulo the length.
"""
from __future__ import annotations

import numpy as np


def gen_dtype(env, fields: str):
    dtypes = {
        'state': ('state', 'f8', env.observation_space.shape),
        'action': ('action', 'f8', env.action_space.shape),
        'next_state': ('next_state', 'f8', env.observation_space.shape),
        'reward': ('reward', 'f8'),
        'done': ('done', 'bool'),
        'timeout': ('timeout', 'bool'),
        'return_': ('return_', 'f8'),
        'advantage': ('advantage', 'f8'),
    }
    return [dtypes[field] for field in fields.split(' ')]


class Dataset(object):
    def __init__(self, dtype, max_size):
        self.dtype = np.dtype(dtype)
        self.max_size = int(max_size)
        self._buf = np.zeros(self.max_size, dtype=self.dtype).view(np.recarray)
        self._index = 0
        self._len = 0

    @staticmethod
    def fromarrays(array_lists, dtype):
        array = np.rec.fromarrays(array_lists, dtype=dtype)
        ret = Dataset(dtype, len(array))
        ret.extend(array)
        return ret

    # -- views -------------------------------------------------------------------------
    @property
    def data(self) -> np.recarray:
        return self._buf[:self._len]

    def __len__(self):
        return self._len

    def size(self):
        return self._len

    def __getitem__(self, item):
        return self.data[item]

    def __getattr__(self, name):
        if name.startswith('_') or name not in self.__dict__.get('dtype', np.dtype([])).names:
            raise AttributeError(name)
        return self.data[name]

    # -- mutation ------------------------------------------------------------------------
    def clear(self):
        self._index = 0
        self._len = 0
        return self

    def append(self, item):
        self._buf[self._index] = item
        self._index = (self._index + 1) % self.max_size
        self._len = min(self._len + 1, self.max_size)
        return self

    def extend(self, items):
        n_new = len(items)
        if n_new > self.max_size:
            items = items[-self.max_size:]
            n_new = self.max_size

        n_tail = self.max_size - self._index
        if n_new <= n_tail:
            self._buf[self._index:self._index + n_new] = items
        else:
            n_head = n_new - n_tail
            self._buf[self._index:] = items[:n_tail]
            self._buf[:n_head] = items[n_tail:]

        self._index = (self._index + n_new) % self.max_size
        self._len = min(self._len + n_new, self.max_size)
        return self

    # -- sampling ------------------------------------------------------------------------
    def sample(self, size, indices=None):
        if indices is None:
            indices = np.random.randint(0, self._len, size=size)
        return self[indices]

    def iterator(self, batch_size):
        indices = np.arange(self._len, dtype=np.int32)
        np.random.shuffle(indices)
        index = 0
        while index + batch_size <= self._len:
            end = index + batch_size
            yield self[indices[index:end]]
            index = end

    def sample_multi_step(self, size: int, n_env: int, n_step=1):
        starts = np.random.randint(0, self._len, size=size)
        batch = []
        for step in range(n_step):
            batch.append(self[(starts + step * n_env) % self._len])
        return np.concatenate(batch).reshape(n_step, size).view(np.recarray)

    # -- checkpointing (port addition) ---------------------------------------------------
    def state_dict(self):
        return {'buf': self._buf.copy(), 'index': self._index, 'len': self._len, 'max_size': self.max_size}

    def load_state_dict(self, state):
        assert state['max_size'] == self.max_size and state['buf'].dtype == self.dtype
        self._buf = np.asarray(state['buf']).copy().view(np.recarray)
        self._index, self._len = int(state['index']), int(state['len'])
