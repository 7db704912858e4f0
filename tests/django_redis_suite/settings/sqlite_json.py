from __future__ import annotations

SECRET_KEY = "django_tests_secret_key"

CACHES = {
    "default": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": ["redis://127.0.0.1:6379?db=4", "redis://127.0.0.1:6379?db=4"],
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
        },
    },
    "doesnotexist": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:56379?db=4",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
        },
    },
    "sample": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379?db=4,redis://127.0.0.1:6379?db=4",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
        },
    },
    "with_prefix": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379?db=4",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
        },
        "KEY_PREFIX": "test-prefix",
    },
}

INSTALLED_APPS = ["django.contrib.sessions"]

USE_TZ = False
