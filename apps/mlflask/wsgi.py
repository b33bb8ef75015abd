"""Gunicorn entry point: `gunicorn 'apps.mlflask.wsgi:app'`."""

from apps.mlflask import create_app

app = create_app()
