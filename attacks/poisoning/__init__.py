"""Poisoning probes: how easily the training recipe is backdoored or derailed by flipped labels
(:mod:`.susceptibility`), and whether a trained model already carries a backdoor
(:mod:`.model_scan`). Planting the poison is :mod:`.triggers`; retraining, :mod:`.retrain`."""
