"""The two pure pieces: which keys are secret-looking, and what a release would change."""

import pytest

from configs.diff import ADDED, CHANGED, REMOVED, KeyChange, config_diff
from configs.masking import MASK, is_secret_key, shown_value


@pytest.mark.parametrize(
    "key",
    [
        "spring.datasource.password",
        "DB_PASSWORD",
        "mysql.passwd",
        "redis.Pwd",
        "ssh.passphrase",
        "client-secret",
        "aws.secretAccessKey",
        "jwt.token.ttl",
        "github.TOKEN",
        "gcp.credentials.json",
        "tls.private.key",
        "tls.privateKey",
        "PRIVATE_KEY",
        "oss.access-key-id",
        "OSS_ACCESS_KEY",
        "sendgrid.apiKey",
        "api_key",
        "jwt.signing-key",
        "aes.encryption.key",
    ],
)
def test_secret_looking_keys_are_recognised_whatever_the_case_and_separators(key):
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "timeout",
        "server.port",
        "spring.datasource.url",
        "feature.flags",
        "key",
        "public.key.url",
        "",
        "access.log",
    ],
)
def test_ordinary_keys_are_not_secret(key):
    assert not is_secret_key(key)


def test_shown_value_masks_only_secret_looking_keys():
    assert shown_value("db.password", "hunter2") == MASK
    assert shown_value("db.url", "jdbc:mysql://db/orders") == "jdbc:mysql://db/orders"
    assert shown_value("db.password", None) is None
    assert shown_value("db.password", "") == MASK  # even emptiness is not told


def test_diff_names_added_changed_and_removed_keys_in_order():
    current = {"a": "1", "b": "2-new", "d": "4", "c": "3"}
    released = {"z": "26", "a": "1", "b": "2", "c": "3", "y": "25"}

    assert config_diff(current, released) == [
        KeyChange("b", CHANGED, "2", "2-new"),
        KeyChange("d", ADDED, None, "4"),
        KeyChange("z", REMOVED, "26", None),
        KeyChange("y", REMOVED, "25", None),
    ]


def test_a_namespace_never_released_is_all_added_and_an_unchanged_one_is_empty():
    assert config_diff({"a": "1"}, None) == [KeyChange("a", ADDED, None, "1")]
    assert config_diff({}, None) == []
    assert config_diff({"a": "1"}, {"a": "1"}) == []
    # An empty value is a value: "" is not the same as absent.
    assert config_diff({"a": ""}, {}) == [KeyChange("a", ADDED, None, "")]
    assert config_diff({}, {"a": ""}) == [KeyChange("a", REMOVED, "", None)]
