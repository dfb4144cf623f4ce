"""ProjectEnvironment now lives in clusters (clusters/0005); its table stays where it is."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("deploys", "0005_run_fields"),
        ("clusters", "0005_projectenvironment"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ProjectEnvironment")],
            database_operations=[],
        ),
    ]
