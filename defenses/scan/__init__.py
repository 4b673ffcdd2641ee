"""Static scanning of model files for code that would run when they are loaded; never unpickles.

``scan_file``/``scan_paths`` read pickle (protocols 0-5), PyTorch zip, TorchScript and legacy
files, joblib (plain and compressed), NumPy ``.npy``/``.npz``, zip and tar containers, nested
to any depth within :class:`ScanLimits`. ``assert_loadable`` is the loader's gate and
``scan_evidence`` turns results into ``supply_chain.scan`` evidence. Rules: docs/scan.md.
"""

from guard.defenses.scan.evidence import PROBE_ID, assert_loadable, scan_evidence
from guard.defenses.scan.results import ScanFinding, ScanLimits, ScanResult, Severity
from guard.defenses.scan.rules import rate_import
from guard.defenses.scan.scanner import iter_files, scan_bytes, scan_file, scan_paths

__all__ = [
    "PROBE_ID",
    "ScanFinding",
    "ScanLimits",
    "ScanResult",
    "Severity",
    "assert_loadable",
    "iter_files",
    "rate_import",
    "scan_bytes",
    "scan_evidence",
    "scan_file",
    "scan_paths",
]
