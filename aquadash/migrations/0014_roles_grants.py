"""Grants get a role. Every existing grant becomes a downloader grant: what a grant gave before."""

import django.db.models.deletion
from django.db import migrations, models


def grants_become_downloader(apps, schema_editor):
    Tenant = apps.get_model("aquadash", "Tenant")
    Grant = apps.get_model("aquadash", "Grant")
    Grant.objects.bulk_create(
        Grant(tenant_id=row.tenant_id, group_id=row.group_id, role="downloader")
        for row in Tenant.groups.through.objects.all()
    )


def grants_lose_their_role(apps, schema_editor):
    Tenant = apps.get_model("aquadash", "Tenant")
    Grant = apps.get_model("aquadash", "Grant")
    Tenant.groups.through.objects.bulk_create(
        Tenant.groups.through(tenant_id=grant.tenant_id, group_id=grant.group_id)
        for grant in Grant.objects.all()
    )


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("aquadash", "0013_api_tokens"),
    ]

    operations = [
        migrations.CreateModel(
            name="Grant",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "role",
                    models.CharField(
                        choices=[
                            ("viewer", "Viewer"),
                            ("downloader", "Downloader"),
                            ("admin", "Admin"),
                        ],
                        default="downloader",
                        help_text="Viewer: job pages and status, no result data. Downloader: "
                        "also result files, previews and exports. Admin: also this tenant's "
                        "settings, for staff users.",
                        max_length=16,
                    ),
                ),
                (
                    "group",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="grants",
                        to="auth.group",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="grants",
                        to="aquadash.tenant",
                    ),
                ),
            ],
            options={
                "ordering": ["group__name"],
                "constraints": [
                    models.UniqueConstraint(fields=("tenant", "group"), name="one_grant_per_group")
                ],
            },
        ),
        migrations.RunPython(grants_become_downloader, grants_lose_their_role),
        # The old grants' table goes once its rows are copied; the field comes back through Grant.
        migrations.RemoveField("tenant", "groups"),
        migrations.AddField(
            model_name="tenant",
            name="groups",
            field=models.ManyToManyField(
                blank=True,
                help_text="Members of these groups may look up this tenant's jobs, each group in "
                "its role. Superusers see all.",
                related_name="tenants",
                through="aquadash.Grant",
                to="auth.group",
                verbose_name="groups granted this tenant",
            ),
        ),
    ]
