"""Run the three emulators in one process for the sandbox.

    python -m sandbox.emulators [--openai-port N --github-port N --stripe-port N]
        [--stripe-webhook-url URL --stripe-webhook-secret S] [--latency-ms N] [--ready-file PATH]

Once every emulator listens it prints one JSON line (and writes it to --ready-file):
``{"openai": "http://127.0.0.1:P/v1", "github": "http://127.0.0.1:P", "stripe": "http://127.0.0.1:P"}``,
the values of OPENAI_BASE_URL, GITHUB_URL and STRIPE_API_BASE. Stops cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

from sandbox.emulators.github_emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, GitHubEmulator
from sandbox.emulators.openai_emulator import DEFAULT_MODELS, OpenAIEmulator
from sandbox.emulators.server import HOST, sdk_urls, start_emulators, stop_emulators
from sandbox.emulators.stripe_emulator import DEFAULT_PRICES, DEFAULT_WEBHOOK_SECRET, StripeEmulator


def parse_price(spec: str) -> dict:
    """``ID:NAME:CENTS`` -> a seeded price, e.g. ``price_basic:Basic:900``."""
    price_id, name, cents = spec.split(":")
    return {"id": price_id, "nickname": name, "unit_amount": int(cents)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox.emulators", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--openai-port", type=int, default=0)
    parser.add_argument("--github-port", type=int, default=0)
    parser.add_argument("--stripe-port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0, help="delay between streamed OpenAI chunks")
    parser.add_argument("--request-latency-ms", type=float, default=0,
                        help="delay before every GitHub and Stripe API answer")
    parser.add_argument("--openai-models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--github-client-id", default=os.environ.get("GITHUB_CLIENT_ID", DEFAULT_CLIENT_ID))
    parser.add_argument("--github-client-secret",
                        default=os.environ.get("GITHUB_CLIENT_SECRET", DEFAULT_CLIENT_SECRET))
    parser.add_argument("--github-callback-url", default=None)
    parser.add_argument("--stripe-webhook-url", default=None)
    parser.add_argument("--stripe-webhook-secret", default=DEFAULT_WEBHOOK_SECRET)
    parser.add_argument("--stripe-price", action="append", type=parse_price, default=None,
                        help="ID:NAME:CENTS, repeatable (default price_basic:Basic:900 and price_pro:Pro:2900)")
    parser.add_argument("--ready-file", default=None)
    return parser


async def serve(args: argparse.Namespace) -> None:
    emulators = [
        OpenAIEmulator(models=args.openai_models.split(","), chunk_delay_ms=args.latency_ms),
        GitHubEmulator(args.github_client_id, args.github_client_secret, callback_url=args.github_callback_url),
        StripeEmulator(prices=args.stripe_price or DEFAULT_PRICES, webhook_url=args.stripe_webhook_url,
                       webhook_secret=args.stripe_webhook_secret),
    ]
    for emulator in emulators[1:]:
        emulator.request_latency_ms = args.request_latency_ms
    ports = {"openai": args.openai_port, "github": args.github_port, "stripe": args.stripe_port}
    runners = await start_emulators(emulators, args.host, ports)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    line = json.dumps(sdk_urls(emulators))
    if args.ready_file:
        with open(args.ready_file + ".tmp", "w") as ready:
            ready.write(line + "\n")
        os.replace(args.ready_file + ".tmp", args.ready_file)  # readers never see a half-written file
    print(line, flush=True)
    try:
        await stop.wait()
    finally:
        await stop_emulators(emulators, runners)


def main() -> None:
    asyncio.run(serve(build_parser().parse_args()))


if __name__ == "__main__":
    main()
