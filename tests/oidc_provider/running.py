"""Start the test provider in a process of its own, with a fresh RSA key, for a live test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.live_server import ROOT, free_port

CLIENT_ID = "agent-chat"
CLIENT_SECRET = "agent-chat-test-secret-0123456789"


@dataclass
class Provider:
    """A running provider: its issuer, and what the product needs to use it."""

    issuer: str
    process: subprocess.Popen
    log_path: Path

    @property
    def product_env(self) -> dict[str, str]:
        """The product's settings for this provider."""
        return {"OIDC_ISSUER": self.issuer, "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": CLIENT_SECRET}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def rsa_private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def start_provider(*, redirect_uri: str, users: list[dict[str, Any]], workdir: Path | None = None) -> Provider:
    """Start the provider on a free port, for one client whose callback is `redirect_uri`; wait until it answers."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="oidc-provider-"))
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/o"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    env.update(
        PROVIDER_PORT=str(port),
        PROVIDER_ISSUER=issuer,
        PROVIDER_DATABASE=str(workdir / "provider.sqlite3"),
        PROVIDER_RSA_KEY=rsa_private_key_pem(),
        PROVIDER_CLIENT_ID=CLIENT_ID,
        PROVIDER_CLIENT_SECRET=CLIENT_SECRET,
        PROVIDER_REDIRECT_URI=redirect_uri,
        PROVIDER_USERS=json.dumps(users),
    )
    log_path = workdir / "provider.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.oidc_provider"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    provider = Provider(issuer=issuer, process=process, log_path=log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the OIDC provider exited:\n{provider.log()[-3000:]}")
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                return provider
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    provider.stop()
    raise RuntimeError(f"the OIDC provider did not start:\n{provider.log()[-3000:]}")
