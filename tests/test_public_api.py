"""The public surface: __all__ in step with the lazy exports, and an import that does nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import cachewise


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert cachewise.__all__ == sorted(cachewise.__all__)
    assert set(cachewise.__all__) == set(cachewise._EXPORTS)
    for name in cachewise.__all__:
        assert getattr(cachewise, name) is not None, name


def test_import_opens_no_socket_and_reads_no_setting() -> None:
    probe = textwrap.dedent(
        """
        import socket, sys
        opened = []
        real_connect = socket.socket.connect
        def spy(self, *args, **kwargs):
            opened.append(args)
            return real_connect(self, *args, **kwargs)
        socket.socket.connect = spy
        import django.conf
        read = []
        real_getattr = django.conf.LazySettings.__getattr__
        def spy_getattr(self, name):
            read.append(name)
            return real_getattr(self, name)
        django.conf.LazySettings.__getattr__ = spy_getattr
        import cachewise
        dir(cachewise)
        assert not django.conf.settings.configured, "importing cachewise configured settings"
        print("sockets", opened, "settings", read)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sockets [] settings []"
