"""``antifraud web``: serve the HTTP app with uvicorn."""

import argparse
import os
import sys
import tempfile


def _run(args: argparse.Namespace) -> int:
    # Imported here: FastAPI and uvicorn are not worth loading for the other subcommands.
    import uvicorn

    from antifraud.config import Settings
    from antifraud.web.auth import Authenticator, Role, development_env

    if args.workers < 1:
        raise SystemExit(f"antifraud web: --workers must be at least 1, not {args.workers}")
    if args.dev_users:
        env, tokens = development_env(args.dev_branch)
        os.environ.update(env)  # the server processes read users and key from the environment
        print("development users (tokens change at every start; do not use in production):", file=sys.stderr)
        for name, token in tokens.items():
            branch = f" (branch {args.dev_branch})" if name == Role.TELLER else ""
            print(f"  {name:<15} {token}{branch}", file=sys.stderr)
    if args.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Each server process writes its samples here; a scrape of any of them sums them all.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="antifraud-web-metrics-")
    settings = Settings.from_env()
    Authenticator.from_env(settings)  # refuse bad configuration here, with its message, not in each server process
    uvicorn.run(
        "antifraud.web.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=args.access_log,
        proxy_headers=True,
        forwarded_allow_ips=args.trusted_proxy,
    )
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    web = sub.add_parser(
        "web",
        help="serve the HTTP API and pages (pre-transfer check, live warnings, holds, cases, blacklist)",
        description="Serve the HTTP app. Needs ANTIFRAUD_SECRET_KEY (32+ bytes) and ANTIFRAUD_USERS_FILE (or "
        "ANTIFRAUD_USERS), besides KAFKA_BOOTSTRAP and REDIS_URL; --dev-users makes one user per role instead.",
    )
    web.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    web.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    web.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    web.add_argument(
        "--dev-users",
        action="store_true",
        help="make one user per role with random tokens (printed) and a random session key",
    )
    web.add_argument("--dev-branch", default="B001", help="the development teller's branch (default B001)")
    web.add_argument("--access-log", action="store_true", help="log every request")
    web.add_argument(
        "--trusted-proxy",
        default="127.0.0.1",
        metavar="ADDRESSES",
        help="addresses (comma-separated, or *) of the TLS-terminating proxy whose X-Forwarded-Proto and "
        "X-Forwarded-For are believed: behind it, cookies are marked Secure and logs name the client "
        "(default 127.0.0.1)",
    )
    web.set_defaults(run=_run)
