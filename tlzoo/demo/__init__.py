"""The ``tlzoo demo``: transfer learning against training from scratch, offline, with real numbers.

:mod:`~tlzoo.demo.run` runs the comparison (:func:`run_demo`);
:mod:`~tlzoo.demo.tasks` sets up each modality's source model and target task;
:mod:`~tlzoo.demo.synthetic` makes the small labelled datasets they train on
(also used by the test suite and the benchmarks); :mod:`~tlzoo.demo.command`
is the ``tlzoo demo`` command line.
"""

from tlzoo.demo.run import METHODS, MODALITIES, RECIPES, Recipe, parse_modalities, run_demo

__all__ = ["METHODS", "MODALITIES", "RECIPES", "Recipe", "parse_modalities", "run_demo"]
