"""fashionlab: train, understand and use image classifiers on Fashion-MNIST, fast on an ordinary CPU."""

__version__ = "0.1.0"
