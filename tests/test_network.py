"""Proxies, TLS (CA bundle, client certificates), regions and host typo warnings."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from segment_client import (
    Client,
    ConfigurationError,
    DeliveryError,
    HTTPTransport,
    TransportError,
)
from segment_client._network import EU_HOST, US_HOST
from segment_client.collector import Collector
from segment_client.testing import RecordingTransport
from tests._support.localhttp import LocalServer, ScriptedAPI, forward_proxy

PROXY_VARS = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


# -- proxies -----------------------------------------------------------------------------


def test_proxies_option_sends_through_the_proxy() -> None:
    proxy, relayed = forward_proxy()
    with Collector() as collector, proxy:
        client = Client("wk", host=collector.url, proxies={"http": proxy.url}, max_retries=0)
        for i in range(5):
            client.track("u", f"E{i}")
        assert client.close_and_flush(10)
        assert len(collector.messages()) == 5
    assert relayed == [f"{collector.url}/v1/batch"]


def test_proxy_environment_variables_keep_working(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, relayed = forward_proxy()
    with Collector() as collector, proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        client = Client("wk", host=collector.url, max_retries=0)
        client.track("u", "E")
        assert client.close_and_flush(10)
        assert len(collector.messages()) == 1
    assert relayed == [f"{collector.url}/v1/batch"]


def test_explicit_proxies_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, relayed = forward_proxy()
    dead, _ = forward_proxy()
    dead.close()  # a port nothing listens on any more
    with Collector() as collector, proxy:
        monkeypatch.setenv("HTTP_PROXY", dead.url)
        client = Client("wk", host=collector.url, proxies={"http": proxy.url}, max_retries=0)
        client.track("u", "E")
        assert client.close_and_flush(10)
        assert len(collector.messages()) == 1
    assert len(relayed) == 1


def test_proxy_password_is_redacted_from_transport_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy_url = "http://agent:pr0xy-pa55@127.0.0.1:9"
    transport = HTTPTransport(
        "wk", url="http://127.0.0.1:9/v1/batch", session_options={"proxies": {"http": proxy_url}}
    )

    def fail(*args: object, **kwargs: object) -> None:
        # urllib3 has put proxy URLs in its messages before; whatever says it, hide it.
        raise requests.exceptions.ProxyError(f"Cannot connect to proxy {proxy_url}")

    session = transport._get_session()
    monkeypatch.setattr(session, "post", fail)
    monkeypatch.setattr(session, "send", fail)
    with pytest.raises(TransportError) as info:
        transport.send([b'{"type": "track"}'])
    assert "pr0xy-pa55" not in str(info.value) and "agent:***@" in str(info.value)
    transport.close()


# -- TLS ---------------------------------------------------------------------------------


def _cert(
    name: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None,
    *, ca: bool = False,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        # Key identifiers: Python 3.13 verifies with VERIFY_X509_STRICT, which needs them.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, *items: x509.Certificate | rsa.RSAPrivateKey) -> str:
    data = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            data += item.public_bytes(serialization.Encoding.PEM)
        else:
            data += item.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as files."""
    tmp = tmp_path_factory.mktemp("pki")
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _cert("test CA", ca_key, None, ca=True)
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "ca": _write(tmp / "ca.pem", ca),
        "server": _write(tmp / "server.pem", _cert("127.0.0.1", server_key, (ca.subject, ca_key)),
                         server_key),
        "client": _write(tmp / "client.pem", _cert("client", client_key, (ca.subject, ca_key)),
                         client_key),
    }


@pytest.fixture
def tls_api(pki: dict[str, str]) -> Iterator[tuple[LocalServer, Collector, ssl.SSLContext]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"])
    collector = ScriptedAPI()  # TLS: the library's collector speaks plain HTTP
    with LocalServer(collector, tls=context) as server:
        yield server, collector, context


def test_verify_with_a_ca_bundle(pki, tls_api) -> None:
    server, collector, _ = tls_api
    client = Client("wk", host=server.url, verify=pki["ca"], max_retries=0)
    client.track("u", "E")
    assert client.close_and_flush(10)
    assert len(collector.messages) == 1


def test_ca_bundle_option_wins_over_requests_ca_bundle_env(pki, tls_api, monkeypatch) -> None:
    server, collector, _ = tls_api
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/bundle.pem")
    client = Client("wk", host=server.url, verify=pki["ca"], max_retries=0)
    client.track("u", "E")
    assert client.close_and_flush(10)
    assert len(collector.messages) == 1


def test_untrusted_certificate_is_a_reported_transport_error(tls_api) -> None:
    server, collector, _ = tls_api
    reported: list[DeliveryError] = []
    client = Client(
        "wk", host=server.url, max_retries=0, on_error=lambda e, m: reported.append(e)
    )
    client.track("u", "E")
    assert client.close_and_flush(10) is False
    assert collector.messages == []
    [error] = reported
    assert isinstance(error, TransportError) and "TLS certificate" in str(error)


def test_client_certificate(pki, tls_api) -> None:
    server, collector, context = tls_api
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(pki["ca"])
    without = Client("wk", host=server.url, verify=pki["ca"], max_retries=0)
    without.track("u", "refused")
    assert without.close_and_flush(10) is False
    with_cert = Client("wk", host=server.url, verify=pki["ca"], cert=pki["client"], max_retries=0)
    with_cert.track("u", "accepted")
    assert with_cert.close_and_flush(10)
    assert [m["event"] for m in collector.messages] == ["accepted"]


def test_network_option_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="proxies must map"):
        Client("wk", proxies=["http://proxy"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"verify must be .* does not exist"):
        Client("wk", verify=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="verify must be"):
        Client("wk", verify=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cert: the file"):
        Client("wk", cert=(str(tmp_path / "c.pem"), str(tmp_path / "k.pem")))
    with pytest.raises(ConfigurationError, match="cannot be combined with transport="):
        Client("wk", transport=RecordingTransport(), proxies={"https": "http://p:1"})


# -- regions and typos -------------------------------------------------------------------


def test_region_shortcut() -> None:
    assert Client("wk", region="eu").host == EU_HOST == "https://events.eu1.segmentapis.com"
    assert Client("wk", region="US").host == US_HOST
    with pytest.raises(ConfigurationError, match="region must be one of"):
        Client("wk", region="eu1")
    with pytest.raises(ConfigurationError, match="either host= or region="):
        Client("wk", region="eu", host="https://api.segment.io")
    assert Client("wk", region="eu", host=EU_HOST + "/").host == EU_HOST


@pytest.mark.parametrize(
    ("host", "known"),
    [
        ("https://api.segmnet.io", "api.segment.io"),
        ("https://api.segment.com", "api.segment.io"),
        ("https://events.eu.segmentapis.com", "events.eu1.segmentapis.com"),
        ("https://events.eu1.segmentapi.com", "events.eu1.segmentapis.com"),
    ],
)
def test_host_typo_warns(host: str, known: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="segment_client"):
        Client("wk", host=host)
    [record] = caplog.records
    assert known in record.getMessage() and "typo" in record.getMessage()


@pytest.mark.parametrize(
    "host",
    [US_HOST, EU_HOST, "http://127.0.0.1:8080", "https://segment-proxy.example.com",
     "https://hosted.rudderlabs.com"],
)
def test_no_warning_for_real_hosts(host: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="segment_client"):
        Client("wk", host=host)
    assert caplog.records == []
