"""Rendering of stored results: HTML pages (jinja2 templates in ``templates/``)."""
