"""landscape: loss-landscape visualization for neural networks (Li et al., NeurIPS 2018)."""

__version__ = "0.1.0"
