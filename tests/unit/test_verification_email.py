"""The pure parts of the email check: the addresses mailed and the stored code hash."""

from __future__ import annotations

import pytest

from edgeplane.verification.email_code import (
    CODE_DIGITS,
    SmtpSettings,
    admin_addresses,
    code_matches,
    hash_code,
    new_code,
    new_salt,
)


def test_admin_addresses_are_the_cab_forum_list() -> None:
    assert admin_addresses("Example.COM.") == [
        "admin@example.com",
        "administrator@example.com",
        "hostmaster@example.com",
        "postmaster@example.com",
        "webmaster@example.com",
    ]


def test_admin_addresses_of_an_idn_use_a_labels() -> None:
    assert admin_addresses("bücher.example")[0] == "admin@xn--bcher-kva.example"


def test_admin_addresses_reject_a_non_domain() -> None:
    with pytest.raises(ValueError, match="empty"):
        admin_addresses(" . ")


def test_new_code_is_digits_and_random() -> None:
    codes = {new_code() for _ in range(50)}
    assert all(len(c) == CODE_DIGITS and c.isdigit() for c in codes)
    assert len(codes) > 45


def test_hash_matches_only_its_code_and_salt() -> None:
    salt = new_salt()
    hashed = hash_code("12345678", salt)
    assert "12345678" not in hashed
    assert code_matches("12345678", salt, hashed)
    assert code_matches("1234 5678", salt, hashed)  # as typed from the mail
    assert code_matches("1234-5678", salt, hashed.upper())
    assert not code_matches("12345679", salt, hashed)
    assert not code_matches("12345678", new_salt(), hashed)
    assert not code_matches("12345678", salt, "")
    assert not code_matches("12345678", salt, "ü" * 64)


def test_same_code_different_salts_hash_differently() -> None:
    assert hash_code("00000000", "a") != hash_code("00000000", "b")
    assert hash_code("00000000", "a") == hash_code("00000000", "a")


def test_smtp_settings_repr_hides_the_password() -> None:
    settings = SmtpSettings("127.0.0.1", username="u", password="hunter2-secret")
    assert "hunter2-secret" not in repr(settings)
