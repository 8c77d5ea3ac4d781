"""tls_cert on the controller: the CA, a node's certificate, idempotence, renewal, check mode,
file modes, and the refusal of certificates brought that do not fit."""
import os
import stat

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import tls
from ansible_collections.pgha.cluster.plugins.modules import tls_cert
from ansible_collections.pgha.cluster.tests.unit.plugins.modules.module_harness import run

NAMES = ["192.0.2.11", "db1"]


@pytest.fixture
def paths(tmp_path):
    folder = tmp_path / "tls"
    return {"dir": folder, "ca_cert": str(folder / "ca.crt"), "ca_key": str(folder / "ca.key"),
            "cert": str(folder / "db1.crt"), "key": str(folder / "db1.key")}


def make_ca(monkeypatch, paths, **extra):
    return run(monkeypatch, tls_cert, dict(kind="ca", ca_cert=paths["ca_cert"], ca_key=paths["ca_key"], **extra))


def make_server(monkeypatch, paths, **extra):
    args = dict(kind="server", names=NAMES, **{k: paths[k] for k in ("ca_cert", "ca_key", "cert", "key")})
    args.update(extra)
    return run(monkeypatch, tls_cert, args)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_ca_is_made_once_with_a_private_key(monkeypatch, paths):
    first = make_ca(monkeypatch, paths, common_name="lab CA")
    assert not first["failed"] and first["changed"] and first["reason"] == "missing"
    assert first["certificate"]["subject"] == "CN=lab CA" and first["diff"]["before"] == {}
    assert mode(paths["ca_key"]) == 0o600 and mode(paths["ca_cert"]) == 0o644 and mode(str(paths["dir"])) == 0o700
    second = make_ca(monkeypatch, paths, common_name="lab CA")
    assert not second["failed"] and not second["changed"] and second["certificate"] == first["certificate"]
    assert "PRIVATE KEY" not in repr(first) + repr(second)


def test_a_ca_missing_its_key_is_not_replaced(monkeypatch, paths):
    make_ca(monkeypatch, paths)
    os.unlink(paths["ca_key"])
    result = make_ca(monkeypatch, paths)
    assert result["failed"] and "only one of ca_cert" in result["msg"] and not os.path.exists(paths["ca_key"])


def test_a_node_certificate_is_made_signed_and_then_left_alone(monkeypatch, paths):
    make_ca(monkeypatch, paths)
    first = make_server(monkeypatch, paths)
    assert not first["failed"] and first["changed"] and first["reason"] == "missing"
    assert first["certificate"]["subject_alt_names"] == ["db1", "192.0.2.11"]
    assert first["diff"]["after"]["issuer"] == "CN=pgha cluster CA" and first["key"] == paths["key"]
    assert mode(paths["key"]) == 0o600 and mode(paths["cert"]) == 0o644
    key_before = open(paths["key"], "rb").read()
    second = make_server(monkeypatch, paths, names=list(reversed(NAMES)))
    assert not second["failed"] and not second["changed"] and second["reason"] is None
    assert open(paths["key"], "rb").read() == key_before
    assert "PRIVATE KEY" not in repr(first) + repr(second)


@pytest.mark.parametrize("change, reason", [
    ({"names": NAMES + ["192.0.2.100"]}, "names differ"),
    ({"renew_days": 800}, "expires within 800 days"),   # a new certificate is valid for 730
])
def test_a_node_certificate_is_made_again(monkeypatch, paths, change, reason):
    make_ca(monkeypatch, paths)
    before = make_server(monkeypatch, paths)["certificate"]
    result = make_server(monkeypatch, paths, **change)
    assert result["changed"] and result["reason"] == reason and result["diff"]["before"] == before


def test_a_certificate_of_another_ca_is_made_again(monkeypatch, paths, tmp_path):
    make_ca(monkeypatch, paths)
    make_server(monkeypatch, paths)
    other = dict(paths, ca_cert=str(tmp_path / "other.crt"), ca_key=str(tmp_path / "other.key"))
    make_ca(monkeypatch, other, common_name="other CA")
    result = make_server(monkeypatch, other)
    assert result["changed"] and result["reason"] == "not signed by the CA"
    assert result["diff"]["before"]["issuer"] == "CN=pgha cluster CA" and result["diff"]["after"]["issuer"] == "CN=other CA"


def test_check_mode_writes_nothing(monkeypatch, paths):
    ca = make_ca(monkeypatch, paths, _ansible_check_mode=True)
    server = make_server(monkeypatch, paths, _ansible_check_mode=True)
    assert ca["changed"] and server["changed"] and server["reason"] == "the CA does not exist yet"
    assert not paths["dir"].exists()
    make_ca(monkeypatch, paths)
    make_server(monkeypatch, paths)
    files = {name: open(paths[name], "rb").read() for name in ("cert", "key")}
    renewed = make_server(monkeypatch, paths, renew_days=800, _ansible_check_mode=True)
    assert renewed["changed"] and {name: open(paths[name], "rb").read() for name in ("cert", "key")} == files


def test_a_node_certificate_needs_its_ca(monkeypatch, paths):
    result = make_server(monkeypatch, paths)
    assert result["failed"] and "does not exist: ensure it first" in result["msg"]


def brought(monkeypatch, paths, **extra):
    args = dict(kind="provided", names=["192.0.2.11"], **{k: paths[k] for k in ("ca_cert", "cert", "key")})
    args.update(extra)
    return run(monkeypatch, tls_cert, args)


@pytest.fixture
def own(monkeypatch, paths):
    """Certificates an operator brings (made here by the module itself)."""
    make_ca(monkeypatch, paths)
    make_server(monkeypatch, paths)
    return paths


def test_certificates_brought_that_fit_change_nothing(monkeypatch, own):
    result = brought(monkeypatch, own)
    assert not result["failed"] and not result["changed"] and result["certificate"]["subject"] == "CN=192.0.2.11"


def test_certificates_brought_refused_naming_the_option(monkeypatch, own, tmp_path):
    other = {"ca_cert": str(tmp_path / "o.crt"), "ca_key": str(tmp_path / "o.key")}
    make_ca(monkeypatch, other)
    tls.write_file(str(tmp_path / "stray.key"), tls.key_pem(tls.new_key("ec")), 0o600)
    result = brought(monkeypatch, own, ca_cert=other["ca_cert"], key=str(tmp_path / "stray.key"), names=["192.0.2.12"])
    assert result["failed"] and not result.get("changed")
    assert [p.split(":")[0] for p in result["problems"]] == ["cert", "key", "cert"]
    assert "lacks 192.0.2.12" in result["msg"] and "PRIVATE KEY" not in repr(result)


def test_certificates_brought_missing_files(monkeypatch, own, tmp_path):
    result = brought(monkeypatch, own, key=str(tmp_path / "nope.key"))
    assert result["failed"] and result["problems"] == ["key: %s is not a file" % (tmp_path / "nope.key")]


def test_certificates_brought_that_are_not_pem(monkeypatch, own):
    with open(own["key"], "wb") as handle:
        handle.write(b"not a key")
    result = brought(monkeypatch, own)
    assert result["failed"] and result["msg"].startswith("key: %s is not a PEM file" % own["key"])
