from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def backfill_project_names(apps, schema_editor):
    # Historical models use a plain manager, so the append-only queryset does not refuse this one update.
    AuditEvent = apps.get_model("observability", "AuditEvent")
    Project = apps.get_model("projects", "Project")
    AuditEvent.objects.filter(project__isnull=False).update(
        project_name=Subquery(Project.objects.filter(pk=OuterRef("project_id")).values("name")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("observability", "0001_initial"),
        ("projects", "0003_project_auto_rollback_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="project_name",
            field=models.CharField(blank=True, default="", max_length=63, verbose_name="project"),
        ),
        migrations.RunPython(backfill_project_names, migrations.RunPython.noop),
    ]
