"""Steps "replace the task layer", "train" and "evaluate" of ``adapt()``.

:mod:`~tlzoo.training.train` runs them (``train()``, which returns ``Trained``);
:mod:`~tlzoo.training.strategies` decides what trains, with the ``lora``
strategy's adapters in :mod:`~tlzoo.training.lora`;
:mod:`~tlzoo.training.batches` makes what the loop iterates over (raw examples or
cached features); :mod:`~tlzoo.training.loop` is the one ``accelerate`` loop.
Nothing is re-exported here: ``train`` is the name of a module of this package,
and importing the package does not import torch.
"""
