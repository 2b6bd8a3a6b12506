"""The methods' modules (plain ``nn.Module``s returning ``AnomalyResult``) and their parts."""

from .common import AnomalyResult, Teacher
from .crd import CrossmodalReverseDistillation

__all__ = ["AnomalyResult", "CrossmodalReverseDistillation", "Teacher"]
