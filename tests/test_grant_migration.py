"""The migration that gave grants a role: every grant made before it becomes a downloader grant,
so nobody loses the files they could download."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("aquadash", "0013_api_tokens")]


@pytest.mark.django_db(transaction=True)
def test_grants_made_before_roles_become_downloader_grants():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    group = old.get_model("auth", "Group").objects.create(name="Finance")
    tenant = old.get_model("aquadash", "Tenant").objects.create(
        name="Acme", slug="acme", environment="us-prod-cloud2", identity="x", encrypted_secret="x"
    )
    tenant.groups.add(group)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    new = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps
    grants = new.get_model("aquadash", "Grant").objects.values_list(
        "tenant__slug", "group__name", "role"
    )
    assert list(grants) == [("acme", "Finance", "downloader")]
