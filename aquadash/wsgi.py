"""WSGI entry point, for gunicorn in production (`gunicorn aquadash.wsgi`)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aquadash.settings")
application = get_wsgi_application()
