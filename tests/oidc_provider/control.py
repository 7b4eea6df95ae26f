"""Change the test provider's users and clients, as its administrator would:

python -m tests.oidc_provider.control user NAME EMAIL GROUP,GROUP   (password "password")
python -m tests.oidc_provider.control client ID SECRET REDIRECT_URI
"""

import sys

import django

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402


def user(name: str, email: str, groups: str) -> None:
    person, created = User.objects.get_or_create(username=name)
    person.email = email
    if created:  # changing it later would sign the person out at the provider
        person.set_password("password")
    person.save()
    person.groups.set(Group.objects.get_or_create(name=g)[0] for g in groups.split(",") if g)


def client(client_id: str, secret: str, redirect_uri: str) -> None:
    Application.objects.update_or_create(
        client_id=client_id,
        defaults={
            "name": client_id,
            "client_secret": secret,
            "hash_client_secret": False,
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": redirect_uri,
            "algorithm": Application.RS256_ALGORITHM,
            "skip_authorization": True,
        },
    )


if __name__ == "__main__":
    {"user": user, "client": client}[sys.argv[1]](*sys.argv[2:])
