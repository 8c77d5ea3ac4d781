# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCRAM-SHA-256 verifiers (RFC 5802/7677) as PostgreSQL stores them in pg_authid.

Computing the verifier here means a plaintext password never travels in SQL, and
lets us tell whether a stored verifier matches a password (idempotence).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac
import os

ITERATIONS = 4096


def _keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def _b64(raw):
    return base64.b64encode(raw).decode("ascii")


def make_verifier(password, salt=None, iterations=ITERATIONS):
    salt = salt if salt is not None else os.urandom(16)
    stored_key, server_key = _keys(password, salt, iterations)
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, _b64(salt), _b64(stored_key), _b64(server_key))


def verifier_matches(verifier, password):
    """True when a stored SCRAM verifier was made from this password."""
    try:
        method, rest = verifier.split("$", 1)
        params, keys = rest.split("$", 1)
        iterations, salt = params.split(":", 1)
        stored_b64, server_b64 = keys.split(":", 1)
    except (AttributeError, ValueError):
        return False
    if method != "SCRAM-SHA-256":
        return False
    stored_key, server_key = _keys(password, base64.b64decode(salt), int(iterations))
    return (hmac.compare_digest(stored_key, base64.b64decode(stored_b64)) and
            hmac.compare_digest(server_key, base64.b64decode(server_b64)))
