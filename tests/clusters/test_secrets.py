"""opsportal.secrets: Fernet with key rotation, and the encrypted model field (on clusters.Cluster)."""

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from clusters.models import Cluster
from opsportal.secrets import SecretDecryptionError, decrypt_secret, encrypt_secret, rotate_secret

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def test_round_trip(settings):
    settings.SECRETS_ENCRYPTION_KEYS = [NEW_KEY]
    token = encrypt_secret("s3cr3t-ünïcode")
    assert "s3cr3t" not in token
    assert decrypt_secret(token) == "s3cr3t-ünïcode"
    assert encrypt_secret("same") != encrypt_secret("same")  # random IV


def test_rotation_old_key_still_decrypts_and_rotate_moves_to_new_key(settings):
    settings.SECRETS_ENCRYPTION_KEYS = [OLD_KEY]
    old = encrypt_secret("token-1")
    settings.SECRETS_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert decrypt_secret(old) == "token-1"
    rotated = rotate_secret(old)
    settings.SECRETS_ENCRYPTION_KEYS = [NEW_KEY]
    assert decrypt_secret(rotated) == "token-1"
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(old)


def test_tampered_or_foreign_ciphertext_gives_a_clear_error(settings):
    settings.SECRETS_ENCRYPTION_KEYS = [NEW_KEY]
    token = encrypt_secret("token-1")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SecretDecryptionError, match="OPSPORTAL_SECRETS_KEYS"):
        decrypt_secret(tampered)
    with pytest.raises(SecretDecryptionError):
        decrypt_secret("not-a-fernet-token")
    settings.SECRETS_ENCRYPTION_KEYS = [OLD_KEY]
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(token)


@pytest.mark.django_db
def test_field_stores_ciphertext_and_reads_plaintext_never_in_repr():
    cluster = Cluster.objects.create(
        name="c1",
        environment="test",
        api_url="https://127.0.0.1:6443",
        auth_type="token",
        credential="tok-XYZ",
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT credential FROM clusters_cluster WHERE id = %s", [cluster.pk])
        (raw,) = cursor.fetchone()
    assert "tok-XYZ" not in raw
    assert decrypt_secret(raw) == "tok-XYZ"
    loaded = Cluster.objects.get(pk=cluster.pk)
    assert loaded.credential == "tok-XYZ"
    assert "tok-XYZ" not in repr(loaded.credential)
    assert "tok-XYZ" not in repr(loaded.__dict__)
    assert "tok-XYZ" not in repr(cluster.__dict__)  # also for a value just assigned
