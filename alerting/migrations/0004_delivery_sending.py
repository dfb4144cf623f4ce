from django.db import migrations, models


class Migration(migrations.Migration):
    """What the sender needs: when a delivery was last attempted (the rate limit, stuck sends) and which
    robot a channel uses (channels sharing one robot share its limit)."""

    dependencies = [("alerting", "0003_am_alert_transitions")]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="attempted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="channel",
            name="robot",
            field=models.CharField(blank=True, db_index=True, editable=False, max_length=64),
        ),
    ]
