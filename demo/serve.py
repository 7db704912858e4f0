"""``python -m demo --serve``: the blog and the cachewise dashboard on 127.0.0.1, until Ctrl-C."""

from __future__ import annotations

from rich.console import Console

__all__ = ["serve"]


def serve(port: int, console: Console) -> int:
    """Check, migrate, seed if empty, then run Django's server on 127.0.0.1:``port``."""
    from django.core.management import call_command

    from demo.blog.models import Article
    from demo.runner import check_and_ping, migrate_and_seed

    checks, ping = check_and_ping()
    console.print(checks, ping, sep="\n", markup=False, highlight=False)
    call_command("migrate", verbosity=0, interactive=False)
    if not Article.objects.exists():
        migrate_and_seed(3000)
    console.print(
        f"Blog: http://127.0.0.1:{port}/  (uncached twins under /plain/)\n"
        f"Dashboard: http://127.0.0.1:{port}/cachewise/dashboard/\n"
        "Staff login for the dashboard: admin / admin (the server listens on 127.0.0.1 only)\n"
        "Ctrl-C stops the site and the embedded Redis."
    )
    call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, insecure_serving=True)
    return 0
