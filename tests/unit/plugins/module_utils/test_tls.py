"""The cluster's certificates: CA, server certificates, renewal and the checks of certificates brought."""
import datetime
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import tls

NAMES = ["db1.example.com", "192.0.2.11"]
NOW = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def ca():
    key = tls.new_key("ec")
    return tls.make_ca("test CA", key, 3650, NOW), key


@pytest.fixture(scope="module")
def other_ca():
    key = tls.new_key("ec")
    return tls.make_ca("other CA", key, 3650, NOW), key


@pytest.fixture(scope="module")
def server(ca):
    key = tls.new_key("ec")
    return tls.make_server_cert(NAMES, NAMES[0], key, ca[0], ca[1], 730, NOW), key


def test_the_ca_is_self_signed_for_ten_years_and_signs_certificates_only(ca):
    cert, key = ca
    assert tls.signed_by(cert, cert) and tls.key_matches(cert, key)
    assert tls.not_after(cert) - NOW == datetime.timedelta(days=3650)
    constraints = cert.extensions.get_extension_for_class(tls.x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    assert tls.describe(cert)["subject"] == "CN=test CA"


@pytest.mark.parametrize("key_type, size", [("ec", 256), ("rsa", 3072)])
def test_key_types(key_type, size):
    assert tls.new_key(key_type).key_size == size


def test_a_server_certificate_names_the_node_by_dns_and_ip(ca, server):
    cert, key = server
    info = tls.describe(cert)
    assert info["subject_alt_names"] == NAMES and info["issuer"] == "CN=test CA" and info["subject"] == "CN=db1.example.com"
    sans = cert.extensions.get_extension_for_class(tls.x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(tls.x509.IPAddress)] == ["192.0.2.11"]
    assert tls.signed_by(cert, ca[0]) and tls.not_after(cert) - NOW == datetime.timedelta(days=730)


def test_a_fitting_certificate_is_left_alone(ca, server):
    assert tls.renewal_reason(server[0], server[1], ca[0], list(reversed(NAMES)), 30, NOW) is None


def test_renewal_reasons(ca, other_ca, server):
    cert, key = server
    foreign = tls.make_server_cert(NAMES, NAMES[0], key, other_ca[0], other_ca[1], 730, NOW)
    assert tls.renewal_reason(None, key, ca[0], NAMES, 30, NOW) == "missing"
    assert tls.renewal_reason(cert, tls.new_key("ec"), ca[0], NAMES, 30, NOW) == "key does not match"
    assert tls.renewal_reason(foreign, key, ca[0], NAMES, 30, NOW) == "not signed by the CA"
    assert tls.renewal_reason(cert, key, ca[0], NAMES + ["192.0.2.100"], 30, NOW) == "names differ"
    near_end = tls.not_after(cert) - datetime.timedelta(days=10)
    assert tls.renewal_reason(cert, key, ca[0], NAMES, 30, near_end) == "expires within 30 days"
    assert tls.renewal_reason(cert, key, ca[0], NAMES, 5, near_end) is None


def test_certificates_brought_that_fit(ca, server):
    assert tls.provided_problems([ca[0]], [server[0]], server[1], ["192.0.2.11"], NOW) == []


def test_certificates_brought_that_do_not_fit_name_the_option(ca, other_ca, server):
    cert, key = server
    problems = tls.provided_problems([other_ca[0]], [cert], tls.new_key("ec"), ["192.0.2.12", "db1"], NOW)
    assert problems == [
        "cert: not signed by the CA (directly or through intermediates that follow it in the file)",
        "key: does not match the certificate",
        "cert: its subjectAltName lacks 192.0.2.12, db1 (has db1.example.com, 192.0.2.11)",
    ]
    later = tls.not_after(cert) + datetime.timedelta(days=1)
    assert tls.provided_problems([ca[0]], [cert], key, [], later) == ["cert: expired on %s" % tls.describe(cert)["not_after"]]
    assert tls.provided_problems([], [cert], key, [], NOW) == ["ca_cert: holds no PEM certificate"]


def test_a_chain_through_an_intermediate_and_a_wildcard_name(ca):
    root, root_key = ca
    mid_key = tls.new_key("ec")
    # an intermediate CA: a CA certificate signed by the root (make_ca signs itself, so build it here)
    mid = tls._builder(tls.x509.Name([tls.x509.NameAttribute(tls.NameOID.COMMON_NAME, "mid")]), root.subject,
                       mid_key.public_key(), 365, NOW).add_extension(
        tls.x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(root_key, tls.hashes.SHA256())
    key = tls.new_key("ec")
    leaf = tls.make_server_cert(["*.example.com"], "db", key, mid, mid_key, 365, NOW)
    assert tls.provided_problems([root], [leaf, mid], key, ["db1.example.com"], NOW) == []
    assert tls.provided_problems([root], [leaf], key, [], NOW)[0].startswith("cert: not signed")
    assert tls.missing_names(leaf, ["a.b.example.com", "example.com"]) == ["a.b.example.com", "example.com"]


def test_pem_files_read_back_in_order(ca, server):
    data = tls.cert_pem(server[0]) + tls.cert_pem(ca[0])
    assert [c.subject for c in tls.load_certs(data)] == [server[0].subject, ca[0].subject]
    assert tls.key_matches(server[0], tls.load_key(tls.key_pem(server[1])))


def test_files_are_written_with_their_mode_and_read_back(tmp_path):
    path = str(tmp_path / "server.key")
    tls.write_file(path, b"secret", 0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and tls.read_file(path) == b"secret"
    assert os.listdir(str(tmp_path)) == ["server.key"]
    assert tls.read_file(str(tmp_path / "absent")) is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_openssl_verifies_a_generated_chain_for_the_node_ip(tmp_path, key_type):
    ca_key = tls.new_key(key_type)
    ca_cert = tls.make_ca("test CA", ca_key, 3650)
    key = tls.new_key(key_type)
    cert = tls.make_server_cert(NAMES, NAMES[0], key, ca_cert, ca_key, 730)
    (tmp_path / "ca.crt").write_bytes(tls.cert_pem(ca_cert))
    (tmp_path / "server.crt").write_bytes(tls.cert_pem(cert))
    result = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), "-purpose", "sslserver",
                             "-verify_ip", "192.0.2.11", str(tmp_path / "server.crt")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stdout + result.stderr
