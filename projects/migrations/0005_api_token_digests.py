import hashlib

from django.db import migrations


def keep_only_digests(apps, schema_editor):
    """Existing tokens keep working: their clear keys become the digests DigestTokenAuthentication looks up.
    (The digest is spelled out here: a migration must not change when opsportal.tokens does.)"""
    Token = apps.get_model("authtoken", "Token")
    for key in list(Token.objects.values_list("key", flat=True)):
        Token.objects.filter(key=key).update(key=hashlib.sha256(key.encode()).hexdigest()[:40])


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0004_prod_terminal_grants"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(keep_only_digests, migrations.RunPython.noop, elidable=False)]
