"""The paper's multi-layer perceptrons (its Table 3).

The paper ends each network with Log Softmax; here the models return logits and the loss applies
log-softmax (cross-entropy), which is the same function, computed more stably.
"""

from torch import nn

from .dropout import Dropout  # nn.Dropout with a cheaper random mask on the CPU


def ann() -> nn.Sequential:
    """Table 3a: Initial ANN."""
    return nn.Sequential(
        # Layer   Type      Size   Activation
        nn.Flatten(),                       # Flatten  784
        nn.Linear(784, 392), nn.ReLU(),     # 1  Linear  392  ReLU
        nn.Linear(392, 196), nn.ReLU(),     # 2  Linear  196  ReLU
        nn.Linear(196, 98), nn.ReLU(),      # 3  Linear   98  ReLU
        nn.Linear(98, 10),                  # Output Linear 10 (log-softmax in the loss)
    )


def _dense(n_in: int, n_out: int, dropout: float) -> list[nn.Module]:
    """Linear -> ReLU -> Batch Norm -> Dropout, in the order Table 3b prints them."""
    return [nn.Linear(n_in, n_out), nn.ReLU(), nn.BatchNorm1d(n_out), Dropout(dropout)]


def ann_bn(dropout: float = 0.2) -> nn.Sequential:
    """Table 3b: Modified ANN (batch norm and dropout p=0.2 after every hidden layer)."""
    return nn.Sequential(
        nn.Flatten(),                       # Flatten  784
        *_dense(784, 392, dropout),         # 1  Linear 392 ReLU, Batch Norm, Dropout
        *_dense(392, 196, dropout),         # 2  Linear 196 ReLU, Batch Norm, Dropout
        *_dense(196, 98, dropout),          # 3  Linear  98 ReLU, Batch Norm, Dropout
        nn.Linear(98, 10),                  # Output Linear 10 (log-softmax in the loss)
    )


def ann_dropout(dropout: float = 0.2) -> nn.Sequential:
    """Table 3a with dropout only (the paper's overfitting study, Fig 2)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 392), nn.ReLU(), Dropout(dropout),
        nn.Linear(392, 196), nn.ReLU(), Dropout(dropout),
        nn.Linear(196, 98), nn.ReLU(), Dropout(dropout),
        nn.Linear(98, 10),
    )


def ann_batchnorm() -> nn.Sequential:
    """Table 3a with batch norm only (the paper's overfitting study, Fig 2)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 392), nn.ReLU(), nn.BatchNorm1d(392),
        nn.Linear(392, 196), nn.ReLU(), nn.BatchNorm1d(196),
        nn.Linear(196, 98), nn.ReLU(), nn.BatchNorm1d(98),
        nn.Linear(98, 10),
    )
