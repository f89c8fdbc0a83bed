"""maskdet: face-mask detection studio (data, model zoo, training, evaluation, detection, explanations)."""

__version__ = "0.1.0"
