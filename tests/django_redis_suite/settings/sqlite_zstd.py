from __future__ import annotations

SECRET_KEY = "django_tests_secret_key"

CACHES = {
    "default": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": ["redis://127.0.0.1:6379?db=13", "redis://127.0.0.1:6379?db=13"],
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "COMPRESSOR": "django_redis.compressors.zstd.ZStdCompressor",
        },
    },
    "doesnotexist": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:56379?db=13",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "COMPRESSOR": "django_redis.compressors.zstd.ZStdCompressor",
        },
    },
    "sample": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379?db=13,redis://127.0.0.1:6379?db=13",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "COMPRESSOR": "django_redis.compressors.zstd.ZStdCompressor",
        },
    },
    "with_prefix": {
        "BACKEND": "cachewise.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379?db=13",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "COMPRESSOR": "django_redis.compressors.zstd.ZStdCompressor",
        },
        "KEY_PREFIX": "test-prefix",
    },
}

INSTALLED_APPS = ["django.contrib.sessions"]

USE_TZ = False
