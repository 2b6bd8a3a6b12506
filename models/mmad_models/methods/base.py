"""The contract between a method and the code that trains, evaluates and exports it.

``train.py`` builds a method from a run's configuration, fits its teachers' input
statistics, trains it on ``loss``, fits its normality model, standardises its branch maps
and calibrates, evaluates and saves its ``state_dict``; ``export.py`` traces ``forward``
over the inputs named by ``modalities`` at ``size``; ``cli.py`` takes the ``train``
options a method reads alone from the method (``add_cli_options``, ``check_cli_options``)
and what the manifest records of its training (``training_record``). Nothing there asks
what a method can do, or which one it is: every method answers every member of ``Method``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Self

import torch
from torch import nn

from .common import AnomalyResult
from .scoring import MAP_SIGMA, MapScorer

if TYPE_CHECKING:
    import argparse

    from ..train import RunConfig


class Method(nn.Module, ABC):
    """An anomaly-detection method: a plain ``nn.Module`` from raw inputs to ``AnomalyResult``.

    Attributes, set by the constructor:

    * ``modalities``: the graph's inputs, in rgb, ir, xyz, ct order (the manifest's ``inputs``);
    * ``size``: the height and width the graph takes;
    * ``teachers``: a ``Teacher`` (``common.build_teachers``) for every modality the method
      reads in training (``modalities`` and any it only trains with): training fits their
      input statistics and rounds them to float16, the export describes their in-graph
      normalisation in the manifest;
    * ``scorer``: the ``MapScorer`` that standardises, fuses and smooths the branch maps.

    Why an abstract base class and not a ``typing.Protocol``: nothing type-checks this
    package (Ruff lints it), so a Protocol would be documentation only, and its runtime
    check (``runtime_checkable``) tests attribute presence, the probing this replaces. A
    subclass that misses a member here cannot be instantiated: it fails when it is built,
    not after the epochs or at the export. Every method is an ``nn.Module`` anyway
    (parameters, ``state_dict``, ``train``/``eval``, ONNX tracing), so the base is one, and
    it holds the one ``forward`` every method shares. It adds no parameters or buffers:
    checkpoints and exported graphs are those of the subclass alone.
    """

    modalities: tuple[str, ...]
    size: tuple[int, int]
    teachers: nn.ModuleDict
    scorer: MapScorer

    #: what the method is, for ``train --method``'s help
    summary: ClassVar[str]

    @classmethod
    def add_cli_options(cls, train: argparse.ArgumentParser) -> None:
        """Adds the ``train`` options only this method reads (``RunConfig`` fields). Every
        method's options are on the parser whatever ``--method`` says, each with its
        default, so every run's configuration has every field. Default: none."""

    @classmethod
    def check_cli_options(cls, args: argparse.Namespace, chosen: bool) -> None:
        """Refuses (``SystemExit``, naming the options) parsed ``train`` options this
        method's own options do not go with: among themselves when it is the run's method
        (``chosen``), or ones only it can serve given to another method. Default: none."""

    @classmethod
    def default_map_sigma(cls, cfg: RunConfig) -> float:
        """The anomaly map's smoothing (``MapScorer``'s ``map_sigma``, pixels at 256 px) for a
        run that does not set it. Default: ``scoring.MAP_SIGMA``."""
        return MAP_SIGMA

    @classmethod
    def training_record(cls, cfg: RunConfig) -> dict:
        """What the manifest's ``training`` entry records of a run of this method beyond
        what it records of every run (``cli.py``'s ``export``). Default: nothing."""
        return {}

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: RunConfig, specs: dict[str, dict]) -> Self:
        """The method with the options of a run (``train.RunConfig``) and its teachers'
        encoder ``specs`` per modality: how ``train.build_model`` and ``load_checkpoint``
        build whichever method ``methods.METHODS`` names."""

    @abstractmethod
    def teacher_features(self, inputs: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """The frozen teachers' features of ``inputs``, per modality, as ``loss`` takes them
        in ``feats``: training computes them once for all epochs (the teachers are frozen
        and the inputs not augmented)."""

    @abstractmethod
    def loss(self, inputs: dict[str, torch.Tensor] | None,
             feats: dict[str, list[torch.Tensor]] | None = None) -> torch.Tensor:
        """The training objective on a batch of good parts (a scalar); with ``feats`` (the
        teacher features of the batch) ``inputs`` is None."""

    def fit_inputs(self, train_inputs: dict[str, torch.Tensor]) -> None:
        """Fits what the method derives from the training parts' inputs before any feature is
        computed (after each teacher's input statistics): the part aligner of ``mtfi
        --align``. Nothing by default."""

    def held_out_maps(self, train_inputs: dict[str, torch.Tensor]) -> list[torch.Tensor] | None:
        """Per scorer branch, maps [N,1,H,W] of the training good parts, each scored by a
        normality model fitted without it, called after ``fit_normality``: more good parts
        for the scorer's statistics and the threshold than the validation split. None (the
        default) when the method has none."""
        return None

    def fitted_config(self) -> dict:
        """The ``RunConfig`` fields that fitting decided, called after ``fit_normality``: the
        run's config takes them, so that its checkpoint rebuilds the same model (mtfi: the
        memory bank's size when it was "auto"). None by default."""
        return {}

    @abstractmethod
    def fit_normality(self, train_inputs: dict[str, torch.Tensor], *, seed: int = 0,
                      log: Callable[[str], object] | None = None) -> None:
        """Fits what is fitted rather than trained (a memory bank), on every training good
        part, after the epochs and before the scorer; a method without such a model does
        nothing here."""

    @abstractmethod
    def branch_maps(self, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """One map per scorer branch, in the scorer's order, upsampled to ``size``:
        [B,1,H,W] each, larger where less normal. ``MapScorer.fit`` standardises each on
        the validation good parts."""

    @property
    def branch_modalities(self) -> tuple[str, ...]:
        """The modality of each scorer branch, in ``branch_maps``' order."""
        return self.modalities

    def forward(self, inputs: dict[str, torch.Tensor]) -> AnomalyResult:
        """The branch maps standardised, fused and smoothed by the scorer, and the image score;
        with a ct input also the depth of each column's strongest interior deviation
        (``preprocess.CtInput.depth``), whatever the method, where the ct branch leads the
        fused map, and -1 where another modality's branch does: there the anomaly is not the
        CT's, and the column's deviation says nothing of its depth."""
        ups = self.branch_maps(inputs)
        amap, score = self.scorer.forward_upsampled(ups)
        if "ct" not in self.modalities:
            return AnomalyResult(amap, score, None)
        depth = self.teachers["ct"].input.depth(inputs["ct"])
        lead = self.scorer.leads(ups, self.branch_modalities.index("ct"))
        return AnomalyResult(amap, score, torch.where(lead, depth, torch.full_like(depth, -1.0)))
