"""Every registered model loss passes the shared contract."""

import pytest

from tests.losses.contract import LossContract
from vaml_ext.losses import available_losses

# Import optional registrants so their losses are part of the registry under test.
for _mod in ("vaml_ext.slbo", "vaml_ext.gridworld"):
    try:
        __import__(_mod)
    except ImportError:
        pass


@pytest.fixture(params=available_losses())
def loss_name(request):
    return request.param


class TestEveryRegisteredLoss(LossContract):
    @pytest.fixture(autouse=True)
    def _set_name(self, loss_name):
        self.loss_name = loss_name


def test_builtin_names_present():
    names = set(available_losses())
    assert {"mle", "ma_l1", "ma_vaml", "ma_direct_l1", "ma_direct_l2"} <= names
