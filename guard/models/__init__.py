"""Model adapters (torch, scikit-learn) and safe loading of model files."""
