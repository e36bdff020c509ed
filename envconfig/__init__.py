"""Reading the environment: typed, strict readers for settings, and the DJANGO_SETTINGS_MODULE check.

A plain library at the bottom layer: it imports Django's ImproperlyConfigured
and django-environ, and no package of this project.
"""
