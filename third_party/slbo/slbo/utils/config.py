"""Port of upstream ``lunzi/config.py``: class-based FLAGS, YAML merge and ``-s key=value``.

Upstream parses ``sys.argv`` when ``slbo.utils.flags`` is imported and freezes FLAGS
process-wide. The port keeps the same class-based FLAGS and the same command line
(``-c a.yml b.yml -s model.hidden_sizes='[1000,1000]'``) but parses explicitly
(:func:`parse` takes ``argv``) and can restore the defaults (:meth:`MetaFLAGS.restore`),
so several configurations can run in one process (tests, benchmarks).
"""
from __future__ import annotations

import argparse
import copy
import logging
import os
from typing import List, Optional

import yaml

logger = logging.getLogger("slbo")


def expand(path):
    return os.path.abspath(os.path.expanduser(path))


class MetaFLAGS(type):
    _frozen = False

    def __setattr__(self, key, value):
        assert not MetaFLAGS._frozen or key.startswith("_"), "Modifying FLAGS after freezing is not allowed!"
        super().__setattr__(key, value)

    def __getitem__(self, item):
        return self.__dict__[item]

    def __iter__(self):
        for key, value in list(self.__dict__.items()):
            if key.startswith("_") or isinstance(value, (classmethod, staticmethod)):
                continue
            if isinstance(value, MetaFLAGS):
                value = dict(value)
            elif callable(value):
                continue
            yield key, value

    def as_dict(self):
        return dict(self)

    def merge(self, other: dict):
        for key in other:
            assert key in self.__dict__, f"Can't find key `{key}`"
            if isinstance(self[key], MetaFLAGS) and isinstance(other[key], dict):
                self[key].merge(other[key])
            else:
                setattr(self, key, other[key])

    def set_value(self, path, value):
        key, *rest = path
        assert key in self.__dict__, f"Can't find key `{key}`"
        if not rest:
            setattr(self, key, value)
        else:
            self[key].set_value(rest, value)

    @staticmethod
    def set_frozen(frozen=True):
        MetaFLAGS._frozen = frozen

    def freeze(self):
        for key, value in list(self.__dict__.items()):
            if not key.startswith("_"):
                if isinstance(value, MetaFLAGS):
                    value.freeze()
        self.finalize()

    def finalize(self):
        pass

    # --- port additions: defaults snapshot / restore (tests run several configs) ---
    def snapshot(self):
        return copy.deepcopy(self.as_dict())

    def restore(self, snapshot: dict):
        MetaFLAGS.set_frozen(False)
        self._restore(snapshot)

    def _restore(self, snapshot: dict):
        for key, value in snapshot.items():
            if isinstance(self.__dict__.get(key), MetaFLAGS):
                self[key]._restore(value)
            else:
                setattr(self, key, copy.deepcopy(value))


class BaseFLAGS(metaclass=MetaFLAGS):
    pass


def parse(cls, argv: Optional[List[str]] = None):
    """Upstream ``lunzi.config.parse``: ``-c`` YAML files merged in order, then ``-s k=v`` sets."""
    parser = argparse.ArgumentParser(description="Stochastic Lower Bound Optimization")
    parser.add_argument("-c", "--config", type=str, help="configuration file (YAML)", nargs="+", action="append")
    parser.add_argument("-s", "--set", type=str, help="additional options", nargs="*", action="append")

    args, unknown = parser.parse_known_args(argv)
    for a in unknown:
        logger.info("unknown arguments: %s", a)
    if args.config:
        for config in sum(args.config, []):
            with open(expand(config)) as f:
                cls.merge(yaml.safe_load(f) or {})
    else:
        logger.info("no config file specified.")
    if args.set:
        for instruction in sum(args.set, []):
            path, *value = instruction.split("=")
            cls.set_value(path.split("."), yaml.safe_load("=".join(value)))
    return args
