"""Where the Azure Speech credentials come from, and how they are kept out of logs."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..._exceptions import ConfigurationError

__all__ = ["AzureCredentials", "mask_secret"]

#: Environment variables read when no argument is given.
ENV_KEY, ENV_REGION, ENV_ENDPOINT, ENV_HOST = (
    "SPEECH_KEY",
    "SPEECH_REGION",
    "SPEECH_ENDPOINT",
    "SPEECH_HOST",
)


def _type_name(value: object) -> str | None:
    return None if value is None else type(value).__name__


def mask_secret(secret: str | None) -> str:
    """``'abcd…'`` style: enough to tell keys apart, never enough to use one."""
    if not secret:
        return "None"
    return f"'{secret[:2]}…({len(secret)} chars)'"


@dataclass(frozen=True)
class AzureCredentials:
    """How to reach and authenticate to the Speech service.

    One of ``key``, ``auth_token``, ``token_provider`` or ``token_credential`` authenticates;
    one of ``region``, ``endpoint`` or ``host`` locates the service. ``repr()`` masks secrets.

    Attributes:
        key: the Speech resource key (``Ocp-Apim-Subscription-Key``).
        region: e.g. ``"westeurope"``.
        endpoint: a full ``wss://`` endpoint URL (custom domains, private endpoints).
        host: ``wss://host`` or ``ws://127.0.0.1:PORT`` (the emulator).
        auth_token: a bearer token (Entra ID: ``"aad#<resource id>#<token>"``), valid ≈ 10 min.
        token_provider: a callable returning a fresh token, called per connection.
        token_credential: an ``azure.core.credentials.TokenCredential`` (e.g.
            ``azure.identity.DefaultAzureCredential()``), passed to the SDK.
    """

    key: str | None = field(default=None, repr=False)
    region: str | None = None
    endpoint: str | None = None
    host: str | None = None
    auth_token: str | None = field(default=None, repr=False)
    token_provider: Callable[[], str] | None = field(default=None, repr=False)
    token_credential: Any = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"AzureCredentials(key={mask_secret(self.key)}, region={self.region!r}, "
            f"endpoint={self.endpoint!r}, host={self.host!r}, "
            f"auth_token={mask_secret(self.auth_token)}, "
            f"token_provider={'set' if self.token_provider else None}, "
            f"token_credential={_type_name(self.token_credential)})"
        )

    def with_environment(self, environ: Mapping[str, str] | None = None) -> AzureCredentials:
        """These arguments, blanks filled from ``SPEECH_KEY``/``_REGION``/``_ENDPOINT``/``_HOST``.

        Raises:
            ConfigurationError: nothing authenticates or nothing locates the service; the
                message names the variables to set (never their values).
        """
        env = os.environ if environ is None else environ
        has_token = bool(self.auth_token or self.token_provider or self.token_credential)
        # An argument for one kind (credential, location) ignores every variable of that kind:
        # a leftover SPEECH_HOST must not override an explicit region=.
        located = bool(self.region or self.endpoint or self.host)
        creds = replace(
            self,
            key=self.key or (None if has_token else env.get(ENV_KEY)) or None,
            region=self.region or (None if located else env.get(ENV_REGION)) or None,
            endpoint=self.endpoint or (None if located else env.get(ENV_ENDPOINT)) or None,
            host=self.host or (None if located else env.get(ENV_HOST)) or None,
        )
        if not (creds.key or has_token):
            raise ConfigurationError(
                "no Azure Speech credentials: pass key= (or auth_token=, token_provider=, "
                f"token_credential=) or set {ENV_KEY}"
            )
        if not (creds.region or creds.endpoint or creds.host):
            raise ConfigurationError(
                f"no Azure Speech location: pass region=, endpoint= or host=, or set {ENV_REGION}"
            )
        if creds.token_credential is not None and not creds.endpoint:
            raise ConfigurationError("token_credential needs endpoint= (a custom-domain endpoint)")
        return creds

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by a mask (for SDK error details)."""
        for secret in (self.key, self.auth_token):
            if secret:
                text = text.replace(secret, "***")
        return text
