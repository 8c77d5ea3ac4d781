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
import stringprep
import unicodedata

ITERATIONS = 4096

PROHIBITED = (stringprep.in_table_c12, stringprep.in_table_c21_c22, stringprep.in_table_c3,
              stringprep.in_table_c4, stringprep.in_table_c5, stringprep.in_table_c6,
              stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
              stringprep.in_table_a1)


def saslprep(password):
    """The password libpq and the server hash (RFC 4013 SASLprep as PostgreSQL applies it):
    ASCII unchanged; otherwise non-ASCII spaces mapped to a space, characters mapped to
    nothing removed, NFKC. A password SASLprep prohibits (control or unassigned characters,
    a bidirectional mix) is used as it is, as PostgreSQL does."""
    if all(ord(char) < 128 for char in password):
        return password
    mapped = "".join(" " if stringprep.in_table_c12(char) else char
                     for char in password if not stringprep.in_table_b1(char))
    normalized = unicodedata.normalize("NFKC", mapped)
    if not normalized or any(table(char) for char in normalized for table in PROHIBITED):
        return password
    right_to_left = [stringprep.in_table_d1(char) for char in normalized]
    if any(right_to_left):
        if any(stringprep.in_table_d2(char) for char in normalized) or not (right_to_left[0] and right_to_left[-1]):
            return password
    return normalized


def _keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode("utf-8"), salt, iterations)
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
