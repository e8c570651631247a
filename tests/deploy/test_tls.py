"""DESIGN.md requirement 2: TLS 1.3 in transit.

Starts gunicorn with deploy/gunicorn.conf.py and a throw-away certificate, then proves that a
TLS 1.2 client is refused and a TLS 1.3 client is served.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytestmark = pytest.mark.slow

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"
START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class CertificatePair:
    cert_file: Path
    key_file: Path


def write_self_signed(directory: Path) -> CertificatePair:
    """A self-signed P-256 certificate for localhost and 127.0.0.1, valid for one day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / "cert.pem"
    key_file = directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return CertificatePair(cert_file=cert_file, key_file=key_file)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TLS_CERT_FILE", "TLS_KEY_FILE", "GUNICORN_BIND", "WEB_CONCURRENCY"):
        env.pop(name, None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
            "WEB_CONCURRENCY": "1",
        }
    )
    env.update(extra)
    return env


def client_context(cert: CertificatePair, *, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion) -> ssl.SSLContext:
    """A verifying client context that trusts only the test certificate, limited to the given versions."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert.cert_file))
    context.minimum_version = minimum
    context.maximum_version = maximum
    return context


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    cert: CertificatePair
    stderr_file: Path

    def stderr(self) -> str:
        return self.stderr_file.read_text(encoding="utf-8", errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        # The master did not stop its workers in time: end the whole group we started.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _wait_until_serving(server: Server) -> None:
    """Bounded wait: first for the port to accept, then for a worker to answer over TLS."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    context = client_context(server.cert, minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3)
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"gunicorn exited with status {server.process.returncode}:\n{server.stderr()}")
        if time.monotonic() > deadline:
            pytest.fail(f"gunicorn did not serve within {START_TIMEOUT_SECONDS:.0f} s:\n{server.stderr()}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                pass
            connection = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=5)
            try:
                connection.request("GET", "/healthz")
                connection.getresponse().read()
                return
            finally:
                connection.close()
        except (OSError, http.client.HTTPException):
            time.sleep(0.2)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("tls")
    cert = write_self_signed(directory)
    port = free_port()
    stderr_file = directory / "gunicorn.stderr"
    env = gunicorn_env(
        TLS_CERT_FILE=str(cert.cert_file),
        TLS_KEY_FILE=str(cert.key_file),
        GUNICORN_BIND=f"127.0.0.1:{port}",
    )
    with stderr_file.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "identity.wsgi"],
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    server = Server(process=process, port=port, cert=cert, stderr_file=stderr_file)
    try:
        _wait_until_serving(server)
        yield server
    finally:
        _stop(process)


def test_tls12_client_is_refused(tls_server: Server) -> None:
    """DESIGN.md requirement 2: TLS 1.3 in transit; a client offering at most TLS 1.2 fails the handshake."""
    context = client_context(tls_server.cert, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2)
    with (
        socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname="localhost")
    assert tls_server.process.poll() is None, tls_server.stderr()


def test_tls13_client_is_served(tls_server: Server) -> None:
    """DESIGN.md requirement 2: TLS 1.3 in transit; a TLS 1.3 client handshakes and /healthz answers."""
    context = client_context(tls_server.cert, minimum=ssl.TLSVersion.TLSv1_3, maximum=ssl.TLSVersion.TLSv1_3)
    connection = http.client.HTTPSConnection("localhost", tls_server.port, context=context, timeout=10)
    try:
        connection.connect()
        assert isinstance(connection.sock, ssl.SSLSocket)
        assert connection.sock.version() == "TLSv1.3"
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        body = response.read().decode()
    finally:
        connection.close()

    assert response.status == 200
    assert "ok" in body
    assert response.getheader("X-Request-ID")


@pytest.mark.parametrize(("present", "missing"), [("TLS_CERT_FILE", "TLS_KEY_FILE"), ("TLS_KEY_FILE", "TLS_CERT_FILE")])
def test_half_tls_configuration_stops_start(tmp_path: Path, present: str, missing: str) -> None:
    """DESIGN.md requirement 2: TLS 1.3 in transit; one TLS variable without the other is a start-up error."""
    cert = write_self_signed(tmp_path)
    value = str(cert.cert_file if present == "TLS_CERT_FILE" else cert.key_file)
    env = gunicorn_env(**{present: value}, GUNICORN_BIND=f"127.0.0.1:{free_port()}")

    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "identity.wsgi"],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert missing in result.stderr
    assert "Booting worker" not in result.stderr
