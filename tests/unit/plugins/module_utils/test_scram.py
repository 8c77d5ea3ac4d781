"""SCRAM verifiers as PostgreSQL makes them, SASLprep included (RFC 4013)."""
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils.scram import make_verifier, saslprep, verifier_matches

# Made by PostgreSQL 15 (CREATE ROLE ... PASSWORD, password_encryption scram-sha-256).
POSTGRESQL_VERIFIERS = [
    ("\uff50\uff41\uff53\uff53", "SCRAM-SHA-256$4096:tc/3CnFYBoWpQ9J3U0SQWA==$puc3XUxeVgvns84guB1iYK/ctqnyt44edFhBKXNPcRI="
                                 ":0HqJ8Bab6+kDx6SBxGA32Hk/7/DDZ3FKxD1u8mlO1PA="),
    ("pass\u00a0word", "SCRAM-SHA-256$4096:7kjzazqp69cttKKsI60TPA==$NkOc5iPSCTk7XPA941wzfeJzMOk22cSX4FeAYcvagEg="
                       ":gX/DYs3wwxcE/1hMRkJLwQJbwcCODq17T8IOOk3LCBk="),
    ("I\u00adX\u2168", "SCRAM-SHA-256$4096:hht5WWYQpW7LhKeF0QzGEQ==$okCS1SAI5wvMAxD2V/XVh+43dQ+T9n62RmpfenO3iFo="
                       ":ciWoAsCaNnMxKq6PNlBuaj8BAs2x7TFxvEIQaab0HAM="),
]


@pytest.mark.parametrize("password, verifier", POSTGRESQL_VERIFIERS)
def test_postgresql_verifiers_of_non_ascii_passwords_match(password, verifier):
    assert verifier_matches(verifier, password)
    assert not verifier_matches(verifier, password + "x")


@pytest.mark.parametrize("given, prepared", [
    ("I\u00adX", "IX"),            # RFC 4013 examples: soft hyphen mapped to nothing
    ("user", "user"),
    ("USER", "USER"),
    ("\u00aa", "a"),               # NFKC
    ("\u2168", "IX"),
    ("\uff50\uff41\uff53\uff53", "pass"),
    ("pass\u00a0word", "pass word"),
    ("\u0007", "\u0007"),          # prohibited: used as it is, as PostgreSQL does
    ("\u0627\u0031", "\u0627\u0031"),   # RandALCat not at both ends: as it is
])
def test_saslprep(given, prepared):
    assert saslprep(given) == prepared


def test_a_verifier_made_here_matches_its_password_only():
    verifier = make_verifier("\uff50\uff41\uff53\uff53")
    assert verifier_matches(verifier, "\uff50\uff41\uff53\uff53") and verifier_matches(verifier, "pass")
    assert not verifier_matches(verifier, "Pass")
