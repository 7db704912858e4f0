"""Django system checks (``manage.py check [--deploy]``), registered by ``CachewiseConfig.ready``."""
