"""``guard serve``: a model behind Guard's access defenses, over HTTP.

:func:`create_app` builds the ASGI app around a :class:`~guard.defenses.access.GuardedModel`;
:func:`load_service` loads what a :class:`ServeConfig` names the way ``guard audit`` does
(signature, decryption, scan, then the model); :func:`factory` is the app of one worker of
``guard serve --workers N``.
"""

from guard.defenses.serve.app import CONFIG_ENV, create_app, error_response, factory
from guard.defenses.serve.loading import DEFAULT_MAX_BODY, ServeConfig, Service, load_service

__all__ = [
    "CONFIG_ENV", "DEFAULT_MAX_BODY", "ServeConfig", "Service", "create_app", "error_response",
    "factory", "load_service",
]
