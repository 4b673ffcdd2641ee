"""Model extraction probes: how many queries an attacker needs to train a faithful copy of the
model from its answers (:mod:`.probes`: ``extraction.copycat`` and ``extraction.knockoff``;
:mod:`.queries`: the query pool and the answers; :mod:`.endpoint`: the answers of an HTTP
endpoint; :mod:`.surrogate`: the copy, trained by ART's attacks)."""
