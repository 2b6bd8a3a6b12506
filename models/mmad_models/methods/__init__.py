"""The methods (``Method``s: plain ``nn.Module``s returning ``AnomalyResult``), their parts,
and the one place that names them."""

from .base import Method
from .common import AnomalyResult, Teacher, build_teachers
from .crd import CrossmodalReverseDistillation
from .mtfi import CrossModalDistillation

# A run's --method, and the manifest's ``method`` (schemas/model-manifest.schema.json lists
# the same names in its enum) -> the class that implements it.
METHODS: dict[str, type[Method]] = {
    "crd": CrossmodalReverseDistillation,
    "mtfi": CrossModalDistillation,
}

__all__ = ["METHODS", "AnomalyResult", "CrossModalDistillation", "CrossmodalReverseDistillation", "Method", "Teacher",
           "build_teachers"]
