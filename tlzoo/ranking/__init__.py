"""Which source model? Transferability ranking of candidate source models on the user's own data.

:func:`tlzoo.rank` (module :mod:`tlzoo.ranking.rank`) resolves the candidates
(:mod:`tlzoo.ranking.candidates`), extracts each one's frozen features of the
target's training split through the feature cache, scores them with the
estimators of :mod:`tlzoo.ranking.estimators` (cross-validated k-NN, LogME, a
cross-validated linear probe) and orders them by the combined score of
:mod:`tlzoo.ranking.combine`; the :class:`~tlzoo.ranking.result.Ranking` it
returns lists the candidates best first. Import them from the top level
(``tlzoo.rank``, ``tlzoo.Ranking``): this package re-exports nothing, so the
function ``rank`` never shadows its module ``tlzoo.ranking.rank``.
"""
