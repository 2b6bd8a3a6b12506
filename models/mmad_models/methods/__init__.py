"""The methods' modules (plain ``nn.Module``s returning ``AnomalyResult``) and their parts."""

from .common import AnomalyResult, Teacher, build_teachers
from .crd import CrossmodalReverseDistillation
from .mtfi import CrossModalDistillation

__all__ = ["AnomalyResult", "CrossModalDistillation", "CrossmodalReverseDistillation", "Teacher", "build_teachers"]
