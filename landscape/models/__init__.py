"""The model zoo: CIFAR-style ResNets, VGGs and DenseNets behind one registry."""

# The family modules register their builders on import, so importing them here fills the registry.
from landscape.models import densenet, resnet, vgg  # noqa: F401
from landscape.models.registry import (
    count_parameters,
    create_model,
    list_models,
    model_family,
    register_model,
)

__all__ = ["count_parameters", "create_model", "list_models", "model_family", "register_model"]
