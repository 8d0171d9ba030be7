"""Port of upstream ``slbo/v_function/__init__.py``."""
import abc
from typing import Union

from torch import nn


class BaseVFunction(abc.ABC):
    @abc.abstractmethod
    def get_values(self, states):
        pass


BaseNNVFunction = Union[BaseVFunction, nn.Module]  # in fact it should be Intersection
