"""What ``guard serve`` serves, loaded the way ``guard audit`` loads it.

:class:`ServeConfig` is the command line as data (paths, the names of the key's environment
variables, never a secret); the CLI writes it to a JSON file for the worker processes, each
of which calls :func:`load_service` itself. Loading goes through the audit service's own
path (:func:`guard.audit.load_files`, or :func:`guard.audit.inspect_file` without data): the
file is read once, its signature checked against the manifest, decrypted in memory, scanned
(a file rated high or critical is refused: :class:`~guard.errors.UnsafeModelError`, exit 2;
a bad signature or key is an :class:`~guard.errors.IntegrityFailure`, exit 1), and loaded
from those same bytes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard.errors import ConfigError, TargetMismatchError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from guard.audit import AuditPlan
    from guard.defenses.access.auditlog import AuditLog
    from guard.defenses.access.guarded import GuardedModel, Sanitizer
    from guard.target import ModelAdapter

DEFAULT_MAX_BODY = 8 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    """Everything a worker needs to load the served model: files and options, no secrets
    (``key_env`` and ``passphrase_env`` name environment variables the workers inherit)."""

    model: str
    policy: str
    arch: str | None = None
    data: str | None = None
    clip: str | None = None
    label_column: str | None = None
    name: str | None = None
    key: str | None = None
    key_env: str | None = None
    passphrase_env: str | None = None
    verify_with: str | None = None
    manifest: str | None = None
    unsafe_allow_pickle: bool = False
    log: str | None = None
    log_fsync: bool = False
    log_hmac_key_env: str | None = None
    log_hmac_key: str | None = None
    log_signing_key: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        """Option conflicts, found before anything is loaded."""
        if not isinstance(self.max_body_bytes, int) or self.max_body_bytes <= 0:
            raise ConfigError(f"max_body_bytes must be a positive number of bytes, "
                              f"got {self.max_body_bytes!r}")
        keyed = self.log_hmac_key_env or self.log_hmac_key or self.log_signing_key
        if self.log is None and keyed:
            raise ConfigError("the audit log's keys need --log FILE, the log they protect")
        if self.log_hmac_key_env is not None and self.log_hmac_key is not None:
            raise ConfigError("give one of --log-hmac-key-env VAR and --log-hmac-key FILE, not both")

    def absolute(self) -> ServeConfig:
        """The same configuration with every path absolute (workers may resolve them later)."""
        paths = ("model", "policy", "data", "key", "verify_with", "manifest", "log", "log_hmac_key",
                 "log_signing_key")
        return dataclasses.replace(self, **{k: os.path.abspath(v) for k in paths
                                            if (v := getattr(self, k)) is not None})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str = "serve configuration") -> ServeConfig:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None


@dataclass(slots=True)
class Service:
    """A loaded model behind its guard, and what the app documents about its inputs."""

    guarded: GuardedModel
    log: AuditLog | None
    config: ServeConfig
    input_shape: tuple[int, ...] | None
    input_range: tuple[float, float] | None
    summary: dict[str, Any]

    def app(self, *, close_log: bool = False) -> FastAPI:
        from guard.defenses.serve.app import create_app

        return create_app(self.guarded, log=self.log, max_body_bytes=self.config.max_body_bytes,
                          input_shape=self.input_shape, input_range=self.input_range,
                          summary=self.summary, close_log=close_log)

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def plan_for(config: ServeConfig) -> AuditPlan:
    """The audit plan whose artifact probes check the file: its signature, encryption and scan
    settings from the configuration (as ``guard audit``'s options set them)."""
    from guard.audit import AuditPlan

    given: dict[str, dict[str, Any]] = {
        "supply_chain.signature": {"verify_with": config.verify_with, "manifest": config.manifest},
        "supply_chain.encryption": {"key": config.key, "key_env": config.key_env,
                                    "passphrase_env": config.passphrase_env},
        "supply_chain.scan": {"unsafe_allow_pickle": config.unsafe_allow_pickle or None},
    }
    scoped = {probe: {k: v for k, v in values.items() if v is not None} for probe, values in given.items()}
    return AuditPlan(scoped={probe: values for probe, values in scoped.items() if values})


def load_service(config: ServeConfig) -> Service:
    """The policy, the model (checked and loaded as guard audit does), its input check, the
    extraction monitor the policy asks for, and the audit log, as one GuardedModel."""
    from guard.defenses.access.guarded import GuardedModel
    from guard.defenses.access.policy import AccessPolicy

    policy = AccessPolicy.load(Path(config.policy))
    model, x_eval, shape, clip, name = _load_model(config)
    sanitizer = _sanitizer(x_eval, shape, clip, str(getattr(x_eval, "dtype", "float32")))
    monitor = None
    if policy.monitor is not None:
        from guard.defenses.access.monitor import ExtractionMonitor

        monitor = ExtractionMonitor(policy.monitor)
    log = _open_log(config)
    guarded = GuardedModel(model, policy, sanitizer=sanitizer, monitor=monitor, log=log)
    summary = {"name": name, "framework": model.framework, **model.describe()}
    return Service(guarded, log, config, shape, clip, summary)


def _open_log(config: ServeConfig) -> AuditLog | None:
    """The audit log, with its HMAC key and signing key when the configuration names them."""
    if config.log is None:
        return None
    from guard.defenses.access.auditlog import AuditLog

    hmac_key = None
    if config.log_hmac_key_env is not None or config.log_hmac_key is not None:
        from guard.defenses.crypto.keys import key_from_env, load_key_file

        hmac_key = (key_from_env(config.log_hmac_key_env).key if config.log_hmac_key_env is not None
                    else load_key_file(Path(str(config.log_hmac_key))).key)
    signing_key = None
    if config.log_signing_key is not None:
        from guard.defenses.crypto.signing import load_private_key

        signing_key = load_private_key(Path(config.log_signing_key))
    return AuditLog(Path(config.log), hmac_key=hmac_key, signing_key=signing_key, fsync=config.log_fsync)


def _load_model(
    config: ServeConfig,
) -> tuple[ModelAdapter, Any, tuple[int, ...], tuple[float, float] | None, str]:
    """The model adapter, the evaluation inputs (None without data), one row's shape, the
    declared input range and the model's name."""
    from guard.audit import ModelFiles, inspect_file, load_files
    from guard.build import parse_clip

    plan = plan_for(config)
    clip = parse_clip(config.clip) if config.clip is not None else None
    path = Path(config.model)
    if config.data is not None:
        files = ModelFiles(model=path, data=Path(config.data), clip=clip, arch=config.arch,
                           label_column=config.label_column, name=config.name)
        target, _ = load_files(files, plan)
        return target.model, target.x_eval, target.input_spec.shape, clip, target.name
    artifact, _ = inspect_file(path, plan)
    model, shape = _adapt_without_data(path, config, artifact.content)
    shown = path.with_suffix("") if path.suffix == ".enc" else path
    return model, None, shape, clip, config.name or shown.stem


def _adapt_without_data(
    path: Path, config: ServeConfig, content: bytes,
) -> tuple[ModelAdapter, tuple[int, ...]]:
    """A scikit-learn model served without --data: its row shape is its ``n_features_in_``.
    A torch module has no such record, so it needs --data to learn its input shape."""
    from guard.models.loading import load_model
    from guard.models.sklearn_adapter import SklearnModel

    decrypted = path.suffix == ".enc"
    shown = path.with_suffix("") if decrypted else path
    loaded = load_model(shown, arch=config.arch, unsafe_allow_pickle=config.unsafe_allow_pickle,
                        data=content)
    if loaded.framework != "sklearn":
        raise ConfigError(f"{path}: a {loaded.framework} model needs --data (a few example inputs) "
                          "so the server knows its input shape and classes")
    n_features = getattr(loaded.obj, "n_features_in_", None)
    if not isinstance(n_features, int) or n_features <= 0:
        raise TargetMismatchError(f"{path}: the model does not record its number of input features "
                                  "(n_features_in_); give --data so the server learns the input shape")
    return SklearnModel(loaded.obj, loaded.format), (n_features,)


def _sanitizer(x_eval: Any, shape: tuple[int, ...], clip: tuple[float, float] | None,
               dtype: str) -> Sanitizer:
    """The sanitizer's input validator: learnt from the data when there is some (its row
    shape; the range is ``clip``'s), else the model's row shape; no range without ``clip``."""
    from guard.defenses.sanitize import InputValidator, Sanitizer

    dtype = dtype if dtype in ("float32", "float64") else "float32"
    if x_eval is not None:
        return Sanitizer(InputValidator.from_data(x_eval, clip=clip, dtype=dtype))
    lo, hi = clip if clip is not None else (None, None)
    return Sanitizer(InputValidator(shape, dtype, lo, hi))
