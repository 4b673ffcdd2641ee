"""Personal data in training data: finding it per column and per cell, measuring how
identifiable the rows are (k-anonymity), and masking it (:mod:`.probe` for audits)."""
