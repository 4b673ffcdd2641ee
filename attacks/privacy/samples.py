"""Which samples the membership attacks score, and which the reference models may train on.

Members and non-members are records, not rows. A training set may hold one record twice
(duplicated rows; in coarse tabular data, several people with the same features), and an
evaluation set may hold records of the training set (the training file given as the
evaluation data, or a split made after the rows were duplicated). Two rules follow:

- a scored record has no copy in the population, so the reference models and the null
  model are OUT models for it (a copy there makes them IN models: RMIA's calibration is
  then wrong and the null control trips on a model that saw the record);
- an evaluation row identical to a training row is a member to the model, whichever file
  holds it: it is never a non-member, and the held-out records are the evaluation rows with
  no copy in the training data.

Records are compared by their feature values (as float64, ``-0.0`` as ``0.0``), hashed row
by row with BLAKE2b in bounded chunks, so a million rows cost one pass and no second copy
of the data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

_CHUNK_BYTES = 1 << 24
"""Rows are converted to float64 and hashed at most this many bytes at a time."""


def record_ids(x_train: np.ndarray, x_eval: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One id per row of each set; rows with identical features (in either set) share one."""
    digests = np.concatenate([_digests(x_train), _digests(x_eval)])
    _, ids = np.unique(digests, return_inverse=True)
    ids = ids.reshape(-1)
    return ids[:len(x_train)], ids[len(x_train):]


def _digests(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    step = max(1, _CHUNK_BYTES // max(1, 8 * flat.shape[1]))
    out = np.empty(len(x), dtype="S16")
    for start in range(0, len(x), step):
        block = np.ascontiguousarray(flat[start:start + step], dtype=np.float64) + 0.0  # -0.0 -> 0.0
        out[start:start + len(block)] = [hashlib.blake2b(row.tobytes(), digest_size=16).digest()
                                         for row in block]
    return out


@dataclass(frozen=True, slots=True)
class Records:
    """How many distinct records each set holds, and how many evaluation rows are training
    records (``shared_rows``)."""

    train: int
    held_out: int
    eval_rows: int
    shared_rows: int


def count_records(train_ids: np.ndarray, eval_ids: np.ndarray) -> Records:
    shared = np.isin(eval_ids, train_ids)
    return Records(len(np.unique(train_ids)), len(np.unique(eval_ids[~shared])), len(eval_ids),
                   int(shared.sum()))


@dataclass(slots=True)
class Split:
    """Indices into the target's training (``member``) and evaluation (``non_member``) sets."""

    members: np.ndarray
    non_members: np.ndarray
    spare_members: np.ndarray
    spare_non_members: np.ndarray


def split(train_ids: np.ndarray, eval_ids: np.ndarray, cap: int, seed: int) -> Split:
    """Balanced scored sets of ``min(cap, records // 2)`` members and non-members, one row per
    record, drawn by walking each set's rows in a random order and taking each record the
    first time it comes (a training row is as likely as any other to be drawn, as in the
    membership game); the non-members from the held-out records only. The rest is spare
    (population, and ART's training data): every row of a record not scored, in the same
    random order, so any prefix of it is a random sample however the data was sorted. With
    no duplicates this is a plain split of random permutations."""
    rng = np.random.default_rng(seed)
    train = rng.permutation(len(train_ids))
    held_out = rng.permutation(len(eval_ids))
    held_out = held_out[~np.isin(eval_ids[held_out], train_ids)]
    first_train, first_held = _first_rows(train, train_ids), _first_rows(held_out, eval_ids)
    count = min(cap, len(first_train) // 2, len(first_held) // 2)
    members, non_members = first_train[:count], first_held[:count]
    spare_members = train[~np.isin(train_ids[train], train_ids[members])]
    spare_non_members = held_out[~np.isin(eval_ids[held_out], eval_ids[non_members])]
    return Split(np.sort(members), np.sort(non_members), spare_members, spare_non_members)


def _first_rows(order: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The rows of ``order`` whose record has not come earlier in it, in that order."""
    _, first = np.unique(ids[order], return_index=True)
    out: np.ndarray = order[np.sort(first)]
    return out
