import os

from django.http import HttpRequest
from oauth2_provider.oauth2_validators import OAuth2Validator


class Validator(OAuth2Validator):
    """Claims from the provider's own users: e-mail, user name and group names."""

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "groups"}

    def get_additional_claims(self, request: HttpRequest) -> dict[str, object]:
        user = request.user
        return {
            "email": user.email,
            "preferred_username": user.username,
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }

    def finalize_id_token(self, id_token: dict, *args: object) -> str:
        if audience := os.environ.get("PROVIDER_AUDIENCE"):
            id_token["aud"] = audience
        return super().finalize_id_token(id_token, *args)

    # prompt=none (aquadash's session refresh): oauthlib asks the provider to decide, and
    # django-oauth-toolkit leaves it unimplemented. Its authorization view answers
    # login_required itself to anyone not signed in, so whoever reaches these is signed in,
    # and the test client is registered with skip_authorization (no consent screen).
    def validate_silent_login(self, request: object) -> bool:
        return True

    def validate_silent_authorization(self, request: object) -> bool:
        return True
