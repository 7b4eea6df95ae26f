"""The test settings for the server the browser tests run: it also serves the static files from
the app directories, as no collectstatic runs in tests."""

from tests.settings import *  # noqa: F403

WHITENOISE_USE_FINDERS = True
