"""Dataset provenance: SHA-256 manifests of training data, file by file and row by row, optionally signed."""
