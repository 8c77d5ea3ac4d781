# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster's certificates: a small CA, one server certificate per node, and the checks
of certificates an operator brings. Plain Python on the `cryptography` library (a
dependency of ansible-core, so every controller has it); the module tls_cert and the unit
tests call it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import ipaddress
import os
import re
import tempfile

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the controller
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

KEY_TYPES = ("ec", "rsa")
PEM_CERT = re.compile(br"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
# Clocks of the nodes may lag the controller's a little.
BACKDATE = datetime.timedelta(hours=1)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def new_key(key_type):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certs(data):
    """Every certificate of a PEM file, in file order (a server certificate, then its chain)."""
    return [x509.load_pem_x509_certificate(block) for block in PEM_CERT.findall(data)]


def load_key(data):
    return serialization.load_pem_private_key(data, password=None)


def not_after(cert):
    # not_valid_after_utc came with cryptography 42; older ones return a naive UTC datetime.
    value = getattr(cert, "not_valid_after_utc", None)
    return value or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def split_names(names):
    """(DNS names, IP addresses) of a list of names as a node is reached."""
    dns, ips = [], []
    for name in names:
        try:
            ips.append(ipaddress.ip_address(name))
        except ValueError:
            dns.append(name.lower())
    return dns, ips


def cert_names(cert):
    """The DNS names and IP addresses (as text) of a certificate's subjectAltName."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return ([name.lower() for name in sans.get_values_for_type(x509.DNSName)]
            + [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)])


def dns_matches(pattern, name):
    """RFC 6125: a wildcard stands for the whole leftmost label only."""
    if pattern.startswith("*."):
        return "." in name and name.split(".", 1)[1] == pattern[2:]
    return pattern == name


def missing_names(cert, names):
    """Those of names the certificate does not cover."""
    have = cert_names(cert)
    dns, ips = split_names(names)
    missing = [str(ip) for ip in ips if str(ip) not in have]
    return missing + [name for name in dns if not any(dns_matches(pattern, name) for pattern in have)]


def expires_within(cert, days, now=None):
    return not_after(cert) - (now or utc_now()) < datetime.timedelta(days=days)


def describe(cert):
    """What the diff and the result show of a certificate."""
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "subject_alt_names": cert_names(cert), "not_after": not_after(cert).strftime("%Y-%m-%dT%H:%M:%SZ")}


def signed_by(cert, issuer):
    if cert.issuer != issuer.subject:
        return False
    public = issuer.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def chains_to(chain, roots):
    """Whether chain[0] leads to one of roots through the intermediates in chain[1:]."""
    current, rest = chain[0], list(chain[1:])
    for _hop in range(len(chain) + 1):
        if any(signed_by(current, root) for root in roots):
            return True
        parents = [cert for cert in rest if signed_by(current, cert)]
        if not parents:
            return False
        current = parents[0]
        rest.remove(current)
    return False


def public_bytes(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert, key):
    return public_bytes(cert.public_key()) == public_bytes(key.public_key())


def _builder(subject, issuer, public_key, days, now):
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _usage(digital_signature=False, key_encipherment=False, key_cert_sign=False):
    return x509.KeyUsage(digital_signature=digital_signature, content_commitment=False,
                         key_encipherment=key_encipherment, data_encipherment=False, key_agreement=False,
                         key_cert_sign=key_cert_sign, crl_sign=key_cert_sign, encipher_only=False, decipher_only=False)


def make_ca(common_name, key, days, now=None):
    """A self-signed CA certificate that signs server certificates only (no intermediates)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (_builder(name, name, key.public_key(), days, now or utc_now())
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(_usage(key_cert_sign=True), critical=True))
    return builder.sign(key, hashes.SHA256())


def make_server_cert(names, common_name, key, ca_cert, ca_key, days, now=None):
    """A server certificate for names (DNS names and IP addresses), signed by the CA."""
    dns, ips = split_names(names)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    sans = [x509.DNSName(name) for name in dns] + [x509.IPAddress(ip) for ip in ips]
    builder = (_builder(subject, ca_cert.subject, key.public_key(), days, now or utc_now())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_usage(digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey)),
                              critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.SubjectAlternativeName(sans), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False))
    return builder.sign(ca_key, hashes.SHA256())


def renewal_reason(cert, key, ca_cert, names, renew_days, now=None):
    """Why a server certificate must be made again, or None when it is fine."""
    if cert is None or key is None:
        return "missing"
    if not key_matches(cert, key):
        return "key does not match"
    if not signed_by(cert, ca_cert):
        return "not signed by the CA"
    if sorted(cert_names(cert)) != sorted(str(name) for group in split_names(names) for name in group):
        return "names differ"
    if expires_within(cert, renew_days, now):
        return "expires within %d days" % renew_days
    return None


def provided_problems(ca_certs, chain, key, names, now=None):
    """What is wrong with certificates an operator brings, each message starting with the
    option it is about (ca_cert, cert or key); empty when they fit."""
    if not ca_certs:
        return ["ca_cert: holds no PEM certificate"]
    if not chain:
        return ["cert: holds no PEM certificate"]
    problems = []
    if not chains_to(chain, ca_certs):
        problems.append("cert: not signed by the CA (directly or through intermediates that follow it in the file)")
    if not key_matches(chain[0], key):
        problems.append("key: does not match the certificate")
    missing = missing_names(chain[0], names)
    if missing:
        problems.append("cert: its subjectAltName lacks %s (has %s)" % (", ".join(missing), ", ".join(cert_names(chain[0])) or "none"))
    if expires_within(chain[0], 0, now):
        problems.append("cert: expired on %s" % describe(chain[0])["not_after"])
    return problems


def write_file(path, data, mode):
    """Write atomically with the mode set before any byte is written (keys: 0600)."""
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def read_file(path):
    """The bytes of path, or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()
