"""The paper's convolutional network (its Table 4), layer order as printed there."""

from torch import nn

from .dropout import Dropout


def _conv(n_in: int, n_out: int, dropout: float) -> list[nn.Module]:
    """Convolution 3x3 stride 1 (same padding) -> ReLU -> Batch Norm -> Dropout."""
    return [nn.Conv2d(n_in, n_out, 3, stride=1, padding=1), nn.ReLU(), nn.BatchNorm2d(n_out), Dropout(dropout)]


def _dense(n_in: int, n_out: int, dropout: float) -> list[nn.Module]:
    return [nn.Linear(n_in, n_out), nn.ReLU(), nn.BatchNorm1d(n_out), Dropout(dropout)]


def cnn(dropout: float = 0.2) -> nn.Sequential:
    """Table 4: CNN Structure."""
    return nn.Sequential(
        # Layer  Type               Feature maps  Output size
        *_conv(1, 128, dropout),      # 1  Convolution  128   28x28x128
        *_conv(128, 128, dropout),    # 2  Convolution  128   28x28x128
        nn.MaxPool2d(2, 2),           # 3  Max Pooling        14x14x128
        *_conv(128, 256, dropout),    #    Convolution  256   14x14x256
        *_conv(256, 256, dropout),    # 4  Convolution  256   14x14x256
        nn.MaxPool2d(2, 2),           #    Max Pooling         7x7x256
        nn.AdaptiveAvgPool2d(1),      #    Global Avg. Pool    1x1x256
        nn.Flatten(),                 #    Flatten             256
        *_dense(256, 128, dropout),   # 5  Linear 128 ReLU, Batch Norm, Dropout
        *_dense(128, 64, dropout),    # 6  Linear  64 ReLU, Batch Norm, Dropout
        nn.Linear(64, 10),            # Output Linear 10 (log-softmax in the loss)
    )
