"""Run the stand-in: ``python -m tests.kratos_standin --public HOST:PORT --admin HOST:PORT``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from aiohttp import web

from .admin import create_admin_app
from .public import create_public_app
from .state import StandinState


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.kratos_standin")
    parser.add_argument("--public", type=_host_port, default=("127.0.0.1", 4433))
    parser.add_argument("--admin", type=_host_port, default=("127.0.0.1", 4434))
    parser.add_argument(
        "--public-base-url",
        default=None,
        help="what Kratos builds ui.action from (the proxy's URL in the demo)",
    )
    parser.add_argument("--login-ui-url", default=None)
    parser.add_argument("--error-ui-url", default=None)
    parser.add_argument("--default-return-to", default=None)
    return parser.parse_args(argv)


def build_state(args: argparse.Namespace) -> StandinState:
    public_host, public_port = args.public
    state = StandinState(
        public_base_url=args.public_base_url or f"http://{public_host}:{public_port}"
    )
    for name in ("login_ui_url", "error_ui_url", "default_return_to"):
        if (value := getattr(args, name)) is not None:
            setattr(state, name, value)
    state.add_identity("alice@example.com", "correct horse battery staple")
    state.add_identity("bob@example.com", "hunter2hunter2", totp=True)
    return state


async def _serve(args: argparse.Namespace) -> None:
    state = build_state(args)
    runners = [web.AppRunner(create_public_app(state)), web.AppRunner(create_admin_app(state))]
    try:
        for runner, (host, port) in zip(runners, (args.public, args.admin), strict=True):
            await runner.setup()
            await web.TCPSite(runner, host, port).start()
        print(
            f"kratos stand-in: public http://{args.public[0]}:{args.public[1]} "
            f"(base URL {state.public_base_url}), admin http://{args.admin[0]}:{args.admin[1]}; "
            "seeded alice@example.com / 'correct horse battery staple' and "
            f"bob@example.com / 'hunter2hunter2' (TOTP code {state.totp_code})",
            flush=True,
        )
        await asyncio.Event().wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
