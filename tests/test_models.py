"""Each model's output shape and parameter count against the paper's tables."""

import pytest
import torch

from fashionlab.errors import ConfigError
from fashionlab.models import MODELS, count_parameters, create_model


def linear(n_in, n_out):
    return n_in * n_out + n_out


def conv3x3(n_in, n_out):
    return n_in * n_out * 9 + n_out


BN = 2  # weight and bias per feature
# Table 3a: 784 -> 392 -> 196 -> 98 -> 10
ANN = linear(784, 392) + linear(392, 196) + linear(196, 98) + linear(98, 10)
# Table 3b: the same plus a batch norm after each hidden layer
ANN_BN = ANN + BN * (392 + 196 + 98)
# Table 4: conv 128, 128, 256, 256 (3x3) each with batch norm; dense 128, 64, each with batch norm; output 10
CNN = (conv3x3(1, 128) + conv3x3(128, 128) + conv3x3(128, 256) + conv3x3(256, 256) + BN * (128 + 128 + 256 + 256)
       + linear(256, 128) + BN * 128 + linear(128, 64) + BN * 64 + linear(64, 10))


@pytest.mark.parametrize("name, params", [("ann", ANN), ("ann_bn", ANN_BN), ("cnn", CNN),
                                          ("ann_dropout", ANN), ("ann_batchnorm", ANN_BN)])
def test_parameter_counts_match_the_tables(name, params):
    assert count_parameters(create_model(name)) == params


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape(name):
    model = create_model(name).eval()
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


def test_cnn_feature_map_sizes_follow_table_4():
    model = create_model("cnn").eval()
    shapes = []
    x = torch.zeros(1, 1, 28, 28)
    for layer in model:
        x = layer(x)
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AdaptiveAvgPool2d)):
            shapes.append(tuple(x.shape[1:]))
    assert shapes == [(128, 28, 28), (128, 28, 28), (128, 14, 14), (256, 14, 14), (256, 14, 14), (256, 7, 7),
                      (256, 1, 1)]


def test_modified_ann_has_dropout_02_after_each_batch_norm():
    layers = list(create_model("ann_bn"))
    drops = [m for m in layers if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in drops] == [0.2, 0.2, 0.2]
    for i, m in enumerate(layers):
        if isinstance(m, torch.nn.BatchNorm1d):
            assert isinstance(layers[i - 1], torch.nn.ReLU) and isinstance(layers[i + 1], torch.nn.Dropout)


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match="unknown model 'resnet9000'; choose from ann, ann_batchnorm"):
        create_model("resnet9000")
