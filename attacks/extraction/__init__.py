"""Model extraction probes: how many queries an attacker needs to train a faithful copy of the
model from its answers (:mod:`.probes`)."""
