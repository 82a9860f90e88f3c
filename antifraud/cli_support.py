"""What the Redis-backed subcommands share: one client on REDIS_URL per run, errors as exit codes.

Every such command (``holds``, ``blacklist``, ``blocklist``, ``audit``) answers the same way:
exit 0 done, 1 refused (an unknown object, a move its state does not allow),
2 bad input or Redis unreachable, with one message on stderr that names the
command and never echoes a value (it may be an ID or phone number).
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from antifraud.config import ConfigError, Settings

REFUSED = 1
BAD_INPUT = 2


def invalid_fields(exc: ValidationError) -> str:
    """Which fields broke which rule, never the values."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors(include_input=False)
    )


def fail(prog: str, message: str) -> None:
    """One error line on stderr, prefixed with the command (``antifraud holds: ...``)."""
    sys.stderr.write(f"{prog}: {message}\n")


def run_on_redis(
    prog: str, command: Callable[[Redis], Awaitable[int]], *, refused: tuple[type[Exception], ...] = ()
) -> int:
    """Run ``command`` with a client on REDIS_URL, closed after; its exit code, or the error's.

    1. an error of ``refused``: exit 1 with its message;
    2. a configuration error: raised, for ``antifraud.cli.main`` to report;
    3. a pydantic ValidationError: exit 2 naming the broken fields;
    4. any other ValueError (a bad argument, a rule the input breaks): exit 2 with its message;
    5. a RedisError: exit 2, "Redis unavailable".
    """

    async def run() -> int:
        async with Redis.from_url(Settings.from_env().redis_url) as redis:
            return await command(redis)

    try:
        return asyncio.run(run())
    except refused as exc:
        fail(prog, str(exc))
        return REFUSED
    except ConfigError:
        raise
    except ValidationError as exc:
        fail(prog, invalid_fields(exc))
    except ValueError as exc:
        fail(prog, str(exc))
    except RedisError as exc:
        fail(prog, f"Redis unavailable ({type(exc).__name__}); set REDIS_URL")
    return BAD_INPUT
