from __future__ import annotations

SECRET_KEY = "django_tests_secret_key"

CACHES = {
    "default": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": ["redis://127.0.0.1:6379?db=5", "redis://127.0.0.1:6379?db=5"],
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "COMPRESSOR": "django_redis.compressors.lz4.Lz4Compressor",
        },
    },
    "doesnotexist": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:56379?db=5",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "COMPRESSOR": "django_redis.compressors.lz4.Lz4Compressor",
        },
    },
    "sample": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "127.0.0.1:6379?db=5,127.0.0.1:6379?db=5",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "COMPRESSOR": "django_redis.compressors.lz4.Lz4Compressor",
        },
    },
    "with_prefix": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379?db=5",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "COMPRESSOR": "django_redis.compressors.lz4.Lz4Compressor",
        },
        "KEY_PREFIX": "test-prefix",
    },
}

INSTALLED_APPS = ["django.contrib.sessions"]

USE_TZ = False
