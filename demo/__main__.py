"""``python -m demo`` (``make demo``): run the cachewise demo and print its report.

Options: ``--quick`` (a ~20 s run for tests), ``--requests N`` (per view and variant),
``--html PATH`` (where the HTML report goes; default demo/report/index.html), ``--serve`` (keep
the blog and the dashboard running on 127.0.0.1:8000 instead of measuring).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

DEFAULT_HTML = Path(__file__).resolve().parent / "report" / "index.html"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m demo",
        description="Run the cachewise demo blog under load, with and without caching, and report.",
    )
    parser.add_argument("--quick", action="store_true", help="small run for tests (~20 s)")
    parser.add_argument("--serve", action="store_true", help="serve the blog on 127.0.0.1:8000 instead")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000)")
    parser.add_argument(
        "--requests", type=_positive, default=None, help="requests per view and variant (400)"
    )
    parser.add_argument(
        "--html", type=Path, default=DEFAULT_HTML, help="HTML report path (demo/report/index.html)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the headline figures as JSON")
    parser.add_argument("--sqlite", default=None, help="SQLite file to use (default demo/demo.sqlite3)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit status."""
    args = parse_args(argv)
    console = Console()
    from cachewise.exceptions import EmbeddedRedisError
    from demo.server import DemoError, start_stack

    try:
        with start_stack(args.sqlite) as stack:
            console.print(f"Redis: {'embedded at ' if stack.embedded else 'REDIS_URL '}{stack.redis_url}")
            if args.serve:
                from demo.serve import serve

                return serve(args.port, console)
            from demo.runner import Sizes, run_demo

            results = run_demo(stack, Sizes.for_run(quick=args.quick, requests=args.requests), console)
    except (DemoError, EmbeddedRedisError) as exc:
        console.print(f"[red]{exc}[/]")
        return 1
    except KeyboardInterrupt:
        console.print("Interrupted: every server the demo started has been stopped.")
        return 130
    from demo.html_report import write_html
    from demo.report import print_report
    from demo.summary import headline

    print_report(results, console)
    write_html(results, args.html, console)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(headline(results), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
