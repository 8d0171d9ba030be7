"""Port of upstream ``lunzi/nn/loss.py``: point-wise criteria reduced over the last axis.

``L2Loss`` is upstream's "L2": the per-sample Euclidean norm of the error divided by
sqrt(dim) -- ``sqrt(mean_j (x_j - y_j)^2)`` -- *not* a squared error. ``MSELoss`` is the
per-sample mean squared error; ``L1Loss`` the per-sample mean absolute error.
"""
from torch import nn


class PointwiseLoss(nn.Module):
    def __init__(self, size_average=True, reduce=True):
        super().__init__()
        self.size_average = size_average
        self.reduce = reduce

    def pointwise(self, output, target):
        raise NotImplementedError

    def forward(self, output, target, input=None):
        loss = self.pointwise(output, target)
        if self.reduce and loss.dim() > 1:
            if self.size_average:
                loss = loss.mean(dim=1)
            else:
                loss = loss.sum(dim=1)
        return loss


class L1Loss(PointwiseLoss):
    def pointwise(self, output, target):
        return (output - target).abs()


class L2Loss(PointwiseLoss):
    def pointwise(self, output, target):
        return (output - target).pow(2)

    def forward(self, output, target, input=None):
        return super().forward(output, target).sqrt()


class MSELoss(PointwiseLoss):
    def pointwise(self, output, target):
        return (output - target).pow(2)
