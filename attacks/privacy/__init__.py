"""Privacy probes: what a model discloses about the people in its training data
(:mod:`.membership`: membership inference)."""
