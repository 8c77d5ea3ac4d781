#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: tls_cert
short_description: Ensure the cluster CA and a node's server certificate, or check certificates brought
version_added: 0.1.0
description:
  - Meant to run on the controller (C(delegate_to=localhost)); the files stay there and a role
    copies them to the nodes.
  - O(kind=ca) ensures a CA exists at O(ca_cert) and O(ca_key), self-signed, valid for
    O(valid_days). An existing CA is never replaced (every node certificate depends on it).
  - O(kind=server) ensures a server certificate at O(cert) with a new key at O(key), signed by
    that CA, with O(names) as its subjectAltName (DNS names and IP addresses). It is made
    again only when it is missing, its key does not match, it is not signed by the CA, its
    names differ from O(names), or it expires within O(renew_days).
  - O(kind=provided) changes nothing and checks certificates an operator brings, that O(cert)
    chains to a certificate in O(ca_cert) (through intermediates that follow it in O(cert)),
    O(key) matches it, its subjectAltName covers O(names) and it has not expired. Each
    problem starts with the option it is about.
  - Keys are written 0600, certificates 0644, each atomically; the directory is created 0700.
    No key is ever returned.
extends_documentation_fragment:
  - pgha.cluster.attributes
options:
  kind:
    description: What to ensure or check.
    type: str
    choices: [ca, server, provided]
    required: true
  ca_cert:
    description: The CA certificate (PEM). Required for every kind.
    type: path
    required: true
  ca_key:
    description: The CA's private key (PEM, unencrypted). Required for O(kind=ca) and O(kind=server).
    type: path
  cert:
    description: The server certificate (PEM; for O(kind=provided) optionally followed by intermediates).
    type: path
  key:
    description: The server certificate's private key (PEM, unencrypted).
    type: path
  names:
    description:
      - DNS names and IP addresses the node is reached by; the first is the subject's common name
        of a new server certificate.
      - Required for O(kind=server) and O(kind=provided).
    type: list
    elements: str
    default: []
  common_name:
    description: Common name of a new CA (O(kind=ca)).
    type: str
    default: pgha cluster CA
  key_type:
    description: Type of new keys, C(ec) (P-256) or C(rsa) (3072 bits).
    type: str
    choices: [ec, rsa]
    default: ec
  valid_days:
    description: Validity of a new certificate in days; the default is 3650 for a CA and 730 for a server certificate.
    type: int
  renew_days:
    description:
      - O(kind=server) makes the certificate again when it expires within this many days.
      - O(kind=provided) warns when it does.
    type: int
    default: 30
seealso:
  - name: PostgreSQL SSL support
    description: How the server uses the certificate, key and CA files.
    link: https://www.postgresql.org/docs/current/ssl-tcp.html
author: pgha contributors (@pgha)
'''

EXAMPLES = r'''
- name: Ensure the cluster CA exists on the controller
  pgha.cluster.tls_cert:
    kind: ca
    ca_cert: "{{ inventory_dir }}/.pgha-tls/ca.crt"
    ca_key: "{{ inventory_dir }}/.pgha-tls/ca.key"
    common_name: pgha cluster CA
  delegate_to: localhost
  run_once: true

- name: Ensure this node's server certificate exists, signed by the CA
  pgha.cluster.tls_cert:
    kind: server
    ca_cert: "{{ inventory_dir }}/.pgha-tls/ca.crt"
    ca_key: "{{ inventory_dir }}/.pgha-tls/ca.key"
    cert: "{{ inventory_dir }}/.pgha-tls/{{ inventory_hostname }}.crt"
    key: "{{ inventory_dir }}/.pgha-tls/{{ inventory_hostname }}.key"
    names: ["{{ inventory_hostname }}", "{{ ansible_facts.default_ipv4.address }}"]
  delegate_to: localhost

- name: Check the certificates an operator brings for this node
  pgha.cluster.tls_cert:
    kind: provided
    ca_cert: /srv/pki/ca.crt
    cert: /srv/pki/db1.crt
    key: /srv/pki/db1.key
    names: [db1.example.com, 192.0.2.11]
  delegate_to: localhost
'''

RETURN = r'''
certificate:
  description: The CA certificate (O(kind=ca)) or the server certificate, as it is after the run (or would be, in check mode).
  returned: success
  type: dict
  contains:
    subject:
      description: Subject (RFC 4514).
      type: str
      sample: CN=db1.example.com
    issuer:
      description: Issuer (RFC 4514).
      type: str
      sample: CN=pgha cluster CA
    subject_alt_names:
      description: DNS names, then IP addresses.
      type: list
      elements: str
      sample: [db1.example.com, 192.0.2.11]
    not_after:
      description: End of validity (UTC, ISO 8601).
      type: str
      sample: "2028-12-05T10:00:00Z"
reason:
  description: Why the certificate was (or would be) made, or null when it was left alone.
  returned: always
  type: str
  sample: expires within 30 days
ca_cert:
  description: Path of the CA certificate.
  returned: always
  type: str
  sample: /etc/ansible/inventory/.pgha-tls/ca.crt
cert:
  description: Path of the server certificate.
  returned: when O(kind) is not C(ca)
  type: str
  sample: /etc/ansible/inventory/.pgha-tls/db1.example.com.crt
key:
  description: Path of the server certificate's key (never its content).
  returned: when O(kind) is not C(ca)
  type: str
  sample: /etc/ansible/inventory/.pgha-tls/db1.example.com.key
problems:
  description: What does not fit in certificates brought (O(kind=provided)), each starting with the option it is about.
  returned: failure of O(kind=provided)
  type: list
  elements: str
  sample: ["cert: its subjectAltName lacks 192.0.2.11 (has db1.example.com)"]
'''

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.text.converters import to_native

from ansible_collections.pgha.cluster.plugins.module_utils import tls

DEFAULT_DAYS = {"ca": 3650, "server": 730}


def parse(module, option, loader):
    """What loader makes of the file in option, None when the file does not exist."""
    data = tls.read_file(module.params[option])
    if data is None:
        return None
    try:
        return loader(data)
    except (ValueError, TypeError) as exc:
        module.fail_json(msg="%s: %s is not a PEM file of the expected kind: %s" % (option, module.params[option], to_native(exc)))


def write(module, path, data, mode):
    try:
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        tls.write_file(path, data, mode)
    except OSError as exc:
        module.fail_json(msg="cannot write %s: %s" % (path, to_native(exc)))


def first(certs):
    return certs[0] if certs else None


def ensure_ca(module):
    p = module.params
    cert, key = first(parse(module, "ca_cert", tls.load_certs)), parse(module, "ca_key", tls.load_key)
    if cert is not None and key is not None:
        if not tls.key_matches(cert, key):
            module.fail_json(msg="ca_key %s does not match ca_cert %s" % (p["ca_key"], p["ca_cert"]))
        return False, None, {}, tls.describe(cert)
    if cert is not None or key is not None:
        module.fail_json(msg="only one of ca_cert %s and ca_key %s exists: restore the other, or remove both to make a "
                             "new CA (every server certificate is then made again)" % (p["ca_cert"], p["ca_key"]))
    key = tls.new_key(p["key_type"])
    cert = tls.make_ca(p["common_name"], key, p["valid_days"] or DEFAULT_DAYS["ca"])
    if not module.check_mode:
        write(module, p["ca_key"], tls.key_pem(key), 0o600)
        write(module, p["ca_cert"], tls.cert_pem(cert), 0o644)
    return True, "missing", {}, tls.describe(cert)


def ensure_server(module):
    p = module.params
    ca_cert, ca_key = first(parse(module, "ca_cert", tls.load_certs)), parse(module, "ca_key", tls.load_key)
    cert = first(parse(module, "cert", tls.load_certs))
    before = tls.describe(cert) if cert is not None else {}
    if ca_cert is None or ca_key is None:
        if module.check_mode:  # the CA task before this one would have made it
            return True, "the CA does not exist yet", before, {"subject_alt_names": p["names"]}
        module.fail_json(msg="the CA (ca_cert %s, ca_key %s) does not exist: ensure it first (kind=ca)" % (p["ca_cert"], p["ca_key"]))
    reason = tls.renewal_reason(cert, parse(module, "key", tls.load_key), ca_cert, p["names"], p["renew_days"])
    if reason is None:
        return False, None, before, before
    key = tls.new_key(p["key_type"])
    cert = tls.make_server_cert(p["names"], p["names"][0], key, ca_cert, ca_key, p["valid_days"] or DEFAULT_DAYS["server"])
    if not module.check_mode:
        write(module, p["key"], tls.key_pem(key), 0o600)
        write(module, p["cert"], tls.cert_pem(cert), 0o644)
    return True, reason, before, tls.describe(cert)


def check_provided(module):
    p = module.params
    missing = ["%s: %s is not a file" % (option, p[option]) for option in ("ca_cert", "cert", "key") if not os.path.isfile(p[option])]
    if missing:
        module.fail_json(msg="; ".join(missing), problems=missing)
    ca_certs, chain = parse(module, "ca_cert", tls.load_certs), parse(module, "cert", tls.load_certs)
    key = parse(module, "key", tls.load_key)
    problems = tls.provided_problems(ca_certs, chain, key, p["names"])
    if problems:
        module.fail_json(msg="; ".join(problems), problems=problems)
    info = tls.describe(chain[0])
    if tls.expires_within(chain[0], p["renew_days"]):
        module.warn("cert %s expires on %s: bring a new one" % (p["cert"], info["not_after"]))
    return False, None, info, info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kind=dict(type="str", required=True, choices=["ca", "server", "provided"]),
            ca_cert=dict(type="path", required=True),
            ca_key=dict(type="path", no_log=False),
            cert=dict(type="path"),
            key=dict(type="path", no_log=False),
            names=dict(type="list", elements="str", default=[]),
            common_name=dict(type="str", default="pgha cluster CA"),
            key_type=dict(type="str", default="ec", choices=list(tls.KEY_TYPES), no_log=False),
            valid_days=dict(type="int"),
            renew_days=dict(type="int", default=30),
        ),
        required_if=[
            ("kind", "ca", ["ca_key"]),
            ("kind", "server", ["ca_key", "cert", "key", "names"]),
            ("kind", "provided", ["cert", "key", "names"]),
        ],
        supports_check_mode=True,
    )
    if not tls.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=to_native(tls.CRYPTOGRAPHY_IMPORT_ERROR))
    p = module.params
    p["names"] = list(dict.fromkeys(p["names"]))
    action = {"ca": ensure_ca, "server": ensure_server, "provided": check_provided}[p["kind"]]
    changed, reason, before, after = action(module)
    result = dict(changed=changed, reason=reason, certificate=after, ca_cert=p["ca_cert"], diff=dict(before=before, after=after))
    if p["kind"] != "ca":
        result.update(cert=p["cert"], key=p["key"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
