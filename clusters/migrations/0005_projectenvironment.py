"""ProjectEnvironment moves from deploys to clusters (the runtime owns "what runs where").

State only: the table keeps its name (``deploys_projectenvironment``), so no row is copied and the
foreign keys in the database stay as they are. deploys/0005 removes the model from deploys' state.
"""

import django.db.models.deletion
from django.db import migrations, models

import opsportal.secrets


def relabel_content_type(apps, schema_editor, *, old: str, new: str) -> None:
    # Keeps permissions and admin log entries pointing at the model after the move.
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=new, model="projectenvironment").exists():
        ContentType.objects.filter(app_label=old, model="projectenvironment").update(app_label=new)


def forwards(apps, schema_editor):
    relabel_content_type(apps, schema_editor, old="deploys", new="clusters")


def backwards(apps, schema_editor):
    relabel_content_type(apps, schema_editor, old="clusters", new="deploys")


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0004_configchange"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("deploys", "0004_secret_env"),
        ("projects", "0003_project_auto_rollback_and_more"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ProjectEnvironment",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"),
                        ),
                        (
                            "environment",
                            models.CharField(
                                choices=[("test", "Test"), ("prod", "Production")],
                                max_length=8,
                                verbose_name="environment",
                            ),
                        ),
                        ("namespace", models.CharField(blank=True, max_length=63, verbose_name="namespace")),
                        ("spec", models.JSONField(blank=True, default=dict)),
                        (
                            "secret_env",
                            opsportal.secrets.EncryptedTextField(
                                blank=True, default="", verbose_name="secret environment variables"
                            ),
                        ),
                        ("live_objects", models.JSONField(blank=True, default=list)),
                        ("provisioned_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "cluster",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="environments",
                                to="clusters.cluster",
                            ),
                        ),
                        (
                            "project",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="environments",
                                to="projects.project",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "deploys_projectenvironment",
                        "ordering": ["project", "environment"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("project", "environment"), name="unique_project_environment"
                            )
                        ],
                    },
                ),
                migrations.AlterField(
                    model_name="configchange",
                    name="environment",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="config_changes",
                        to="clusters.projectenvironment",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
