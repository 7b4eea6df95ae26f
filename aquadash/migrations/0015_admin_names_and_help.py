from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("aquadash", "0014_roles_grants"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="watch",
            options={"verbose_name_plural": "watches"},
        ),
        migrations.AlterField(
            model_name="download",
            name="batch_id",
            field=models.CharField(blank=True, max_length=32, verbose_name="batch ID"),
        ),
        migrations.AlterField(
            model_name="download",
            name="file_id",
            field=models.CharField(
                blank=True,
                help_text="Blank for a whole batch.",
                max_length=32,
                verbose_name="file ID",
            ),
        ),
        migrations.AlterField(
            model_name="download",
            name="job_id",
            field=models.CharField(max_length=32, verbose_name="job ID"),
        ),
        migrations.AlterField(
            model_name="download",
            name="variant",
            field=models.CharField(
                blank=True,
                choices=[("csv", "CSV"), ("excel", "CSV for Excel"), ("xlsx", "xlsx")],
                help_text="Blank for the file as Zuora made it.",
                max_length=10,
            ),
        ),
        migrations.AlterField(
            model_name="jobsnapshot",
            name="job_id",
            field=models.CharField(max_length=32, verbose_name="job ID"),
        ),
        migrations.AlterField(
            model_name="jobsnapshot",
            name="raw",
            field=models.JSONField(
                help_text="The job exactly as Zuora last returned it: its times without an offset are in the tenant's time zone."
            ),
        ),
        migrations.AlterField(
            model_name="jobsnapshot",
            name="request_id",
            field=models.CharField(
                blank=True,
                help_text="Zuora-Request-Id of that answer, for Zuora support.",
                max_length=64,
                verbose_name="request ID",
            ),
        ),
        migrations.AlterField(
            model_name="jobsnapshot",
            name="track_id",
            field=models.CharField(blank=True, max_length=64, verbose_name="track ID"),
        ),
        migrations.AlterField(
            model_name="lookup",
            name="job_id",
            field=models.CharField(max_length=64, verbose_name="job ID"),
        ),
        migrations.AlterField(
            model_name="tenant",
            name="base_url",
            field=models.CharField(
                blank=True,
                help_text="Only for “Other host”: the host's whole URL, with https:// (or http:// where ZUORA_ALLOW_HTTP allows it) and no path, such as http://127.0.0.1:8765 for the simulator. Its host and port must be listed in ZUORA_EXTRA_HOSTS by whoever runs aquadash.",
                max_length=200,
                verbose_name="base URL",
            ),
        ),
        migrations.AlterField(
            model_name="tenant",
            name="last_contact_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="When Zuora last answered aquadash for this tenant, or failed to: a Test connection, or a page, download or watch (noted at most once a minute while nothing changes).",
                null=True,
                verbose_name="last contact",
            ),
        ),
        migrations.AlterField(
            model_name="tenant",
            name="last_contact_message",
            field=models.CharField(
                blank=True, editable=False, max_length=500, verbose_name="what Zuora said"
            ),
        ),
        migrations.AlterField(
            model_name="tenant",
            name="last_contact_ok",
            field=models.BooleanField(editable=False, null=True, verbose_name="worked"),
        ),
        migrations.AlterField(
            model_name="watch",
            name="job_id",
            field=models.CharField(max_length=32, verbose_name="job ID"),
        ),
    ]
