"""``guard data``: checks of a training set itself, without auditing a model's robustness.

``manifest`` and ``verify`` (:mod:`guard.cli.data_provenance`) record and check the SHA-256
of every file and row; ``detect-poison`` (:mod:`guard.cli.data_poison`) scores every sample
for signs of poisoning; ``scan`` and ``mask`` (:mod:`guard.cli.data_pii`) find personal data
in a table and write a masked copy.
"""

from __future__ import annotations

import click

from guard.cli.data_pii import COMMANDS as PII_COMMANDS
from guard.cli.data_poison import COMMANDS as POISON_COMMANDS
from guard.cli.data_provenance import COMMANDS as PROVENANCE_COMMANDS


@click.group()
def data() -> None:
    """Check training data: provenance manifests, poisoned samples and personal data."""


for _command in (*PROVENANCE_COMMANDS, *POISON_COMMANDS, *PII_COMMANDS):
    data.add_command(_command)
