"""Port of upstream ``slbo/policies/__init__.py``."""
import abc
from typing import Union

from torch import nn


class BasePolicy(abc.ABC):
    @abc.abstractmethod
    def get_actions(self, states):
        pass


BaseNNPolicy = Union[BasePolicy, nn.Module]  # should be Intersection, see PEP544
