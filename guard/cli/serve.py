"""``guard serve``: serve a model over HTTP behind an access policy (tokens, roles, budgets,
output hardening, extraction monitoring), every request in the audit log.

The model is checked and loaded as ``guard audit`` does (signature, decryption in memory,
scan, load): a file the scan refuses exits 2, a bad signature or key exits 1, before a
socket is opened. With ``--workers N`` (N > 1) uvicorn starts N processes that each load the
model from a configuration file this command writes (paths and environment variable names,
never a key); budgets are shared through the policy's SQLite state, the audit log through a
file lock. Only loopback addresses are served unless ``--allow-remote`` is given: the server
speaks plain HTTP, so anything else belongs behind a TLS proxy.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from guard.errors import ConfigError

MAX_BODY_CAP = 1 << 30
READY_TIMEOUT_S = 600.0
MAX_CONNECTIONS = 1024
"""Open connections and tasks per worker before a request is answered 503 (uvicorn limit_concurrency)."""


@click.command()
@click.option("--model", required=True, help="Model file: .pt/.pth (state dict, with --arch), .safetensors, "
              "TorchScript, .pt2 (torch.export), .skops; add .enc with a key option.")
@click.option("--policy", "policy_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="The access policy (TOML): roles, principals, budgets, monitor.")
@click.option("--arch", help="MODULE:CLASS building the network for a state dict (your code).")
@click.option("--data", help="Example inputs (.npz with x, y or .csv): the input shape (and range, with "
              "--clip) requests are checked against. Optional for scikit-learn models; torch models need it.")
@click.option("--clip", help="Input range 'LO,HI' that requests must stay in, or 'none' (default).")
@click.option("--label-column", help="The label column of a .csv data file.")
@click.option("--name", help="The model's name in /healthz (default: the model file's name).")
@click.option("--key", help="Key file for an encrypted model (decrypted in memory only).")
@click.option("--key-env", help="Environment variable holding the model's key.")
@click.option("--passphrase-env", help="Environment variable holding the model's passphrase.")
@click.option("--verify-with", help="Public key: verify the model against --manifest before loading.")
@click.option("--manifest", help="Signature manifest (from guard sign) covering the model file.")
@click.option("--unsafe-allow-pickle", is_flag=True,
              help="Load pickle/joblib files that the scan passes. They can run code: only files you trust.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port; the line 'serving on' names it).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes, each with its own copy of the model.")
@click.option("--log", "log_path", type=click.Path(path_type=Path, dir_okay=False),
              help="The audit log (JSON lines, hash-chained; appended to). Without it nothing is recorded.")
@click.option("--log-fsync", is_flag=True, help="fsync each audit record (survives a power loss; slower).")
@click.option("--log-hmac-key-env", metavar="VAR", help="Environment variable holding an HMAC key for the "
              "audit log's records (key-file line, base64 or hex of 32 bytes).")
@click.option("--log-hmac-key", metavar="FILE", help="Key file (from guard keygen) holding the audit log's "
              "HMAC key.")
@click.option("--log-signing-key", metavar="PEM", help="Ed25519 private key (guard keygen --signing) that "
              "signs each audit record; verify with guard log verify --public-key.")
@click.option("--max-body", default="8MiB", show_default=True, help="Largest request body accepted.")
@click.option("--allow-remote", is_flag=True,
              help="Listen on a non-loopback address. There is no TLS: put a TLS proxy in front.")
def serve(policy_path: Path, host: str, port: int, workers: int, log_path: Path | None, max_body: str,
          allow_remote: bool, **options: Any) -> None:
    """Serve a model over HTTP (POST /v1/predict) behind an access policy."""
    from guard.defenses.serve.loading import ServeConfig, load_service
    from guard.limits import human_bytes, parse_size

    max_body_bytes = parse_size(max_body)
    if not 0 < max_body_bytes <= MAX_BODY_CAP:
        raise ConfigError(f"--max-body {max_body!r}: give a size between 1 byte and "
                          f"{human_bytes(MAX_BODY_CAP)}")
    _check_host(host, allow_remote)
    config = ServeConfig(
        policy=str(policy_path), log=str(log_path) if log_path is not None else None,
        max_body_bytes=max_body_bytes, **options,
    ).absolute()
    service = load_service(config)  # every check before a socket opens: exit 1 or 2 here
    try:
        if log_path is None:
            click.echo("warning: no --log: requests are not recorded in an audit log", err=True)
        if not any(t.revoked is None for t in service.guarded.tokens.list()):
            click.echo(f"warning: the policy has no active token yet: create one with "
                       f"`guard token create --policy {policy_path} --principal NAME`", err=True)
        with contextlib.closing(_bind(host, port)) as sock:
            bound = sock.getsockname()[1]
            plural = "s" if workers != 1 else ""
            line = (f"serving on {_url(host, bound)} ({workers} worker{plural}, policy {policy_path}, "
                    f"log {log_path if log_path is not None else 'none'})")
            if workers == 1:
                _run_single(service.app(), sock, host, bound, line)
            else:  # each worker loads its own copy: this one only showed that it loads
                service.close()
                _run_workers(config, sock, host, bound, workers, line)
    finally:
        service.close()
    click.echo("guard serve: stopped", err=True)


def _check_host(host: str, allow_remote: bool) -> None:
    if _is_loopback(host):
        return
    if not allow_remote:
        raise ConfigError(f"--host {host}: not a loopback address; guard serve speaks plain HTTP, so serving "
                          "other machines needs --allow-remote and a TLS proxy in front")
    click.echo(f"warning: serving {host} without TLS: bearer tokens cross the network in clear text unless "
               "a TLS proxy terminates the connections in front of guard serve", err=True)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here (not by uvicorn) so a busy port is one clear line,
    and port 0 is a free port the ready line can name."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every answer (headers, then body) waits out the client's delayed ACK (40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_options() -> dict[str, Any]:
    # limit_concurrency: past this many open connections or tasks a request is answered 503 at
    # once instead of queueing; idle kept-alive connections close after 5 s. Connections that
    # never finish their headers (slowloris) still hold a file descriptor each: a reverse proxy
    # in front is the defense against those (docs/runtime-defenses.md).
    return {"log_level": "warning", "access_log": False, "server_header": False, "lifespan": "on",
            "timeout_graceful_shutdown": 10, "limit_concurrency": MAX_CONNECTIONS, "timeout_keep_alive": 5}


def _run_single(app: Any, sock: socket.socket, host: str, port: int, line: str) -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **_uvicorn_options()))
    with _announce_when_ready(host, port, line), _quiet_signals():
        server.run(sockets=[sock])


def _run_workers(config: Any, sock: socket.socket, host: str, port: int, workers: int, line: str) -> None:
    import inspect

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from guard.defenses.serve.app import CONFIG_ENV

    with _config_file(config.to_json()) as path, _environ(CONFIG_ENV, str(path)):
        ucfg = uvicorn.Config("guard.defenses.serve.app:factory", factory=True, host=host, port=port,
                              workers=workers, **_uvicorn_options())
        server = uvicorn.Server(ucfg)
        if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn before 0.36
            supervisor = Multiprocess(ucfg, target=server.run, sockets=[sock])  # type: ignore[call-arg]
        else:
            supervisor = Multiprocess(ucfg, sockets=[sock])
        with _announce_when_ready(host, port, line) as ready, _restored_signals():
            supervisor.run()
        if not ready.is_set():
            raise ConfigError("the workers stopped before serving a request; see the errors above")


@contextlib.contextmanager
def _config_file(text: str) -> Iterator[Path]:
    """The workers' configuration in a private temporary folder, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="guard-serve-"))
    path = folder / "serve.json"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        yield path
    finally:
        path.unlink(missing_ok=True)
        folder.rmdir()


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@contextlib.contextmanager
def _announce_when_ready(host: str, port: int, line: str) -> Iterator[threading.Event]:
    """Print ``line`` once ``/healthz`` answers (a worker has loaded the model and listens)."""
    ready, stop = threading.Event(), threading.Event()
    probe_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104 (mapping, not binding)

    def poll() -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not stop.is_set() and time.monotonic() < deadline:
            if _healthy(probe_host, port):
                ready.set()
                click.echo(line)
                return
            stop.wait(0.1)

    thread = threading.Thread(target=poll, name="guard-serve-ready", daemon=True)
    thread.start()
    try:
        yield ready
    finally:
        stop.set()
        thread.join(timeout=5)


def _healthy(host: str, port: int) -> bool:
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def _quiet_signals() -> Iterator[None]:
    """SIGINT and SIGTERM as no-ops around uvicorn's server: it catches them itself, shuts
    down gracefully, then re-raises the signal to the handlers it found; these make that a
    clean return (exit 0, the audit log closed) rather than a KeyboardInterrupt or a kill."""
    with _restored_signals():
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, _ignore)
        yield


def _ignore(signum: int, frame: Any) -> None:
    return None


@contextlib.contextmanager
def _restored_signals() -> Iterator[None]:
    """The process's SIGINT and SIGTERM handlers put back afterwards (uvicorn's supervisor
    replaces them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved: dict[int, Any] = {
        sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
