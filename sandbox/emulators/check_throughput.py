"""How close the OpenAI emulator comes to the ideal chunk rate with many concurrent streams.

    python -m sandbox.emulators.check_throughput [--streams 200] [--chunks 250] [--delay-ms 20] [--quick]

The emulator runs in its own process (as in the sandbox); this process reads every stream directly
with aiohttp. Ideal: each stream delivers one content chunk per ``delay_ms``, so all streams together
deliver ``streams * 1000 / delay_ms`` chunks per second. The ratio is measured rate / ideal rate
(1.0 = no loss), measured over the whole run, so the ~0.15 s it takes to open 200 connections counts
against it; 250 chunks (5 s streams) by default, 100 with --quick. The last line is JSON like the
benches print.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time

import aiohttp

from sandbox.emulators.control import EmulatorControl


def _serve(conn: multiprocessing.connection.Connection) -> None:
    from sandbox.emulators.openai_emulator import OpenAIEmulator
    from sandbox.emulators.server import EmulatorServer

    server = EmulatorServer(OpenAIEmulator()).start()
    conn.send(server.url)
    conn.recv()  # any message (or the pipe closing) stops the server
    server.stop()


async def _read_stream(session: aiohttp.ClientSession, url: str, counts: list[int]) -> None:
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with session.post(f"{url}/v1/chat/completions", json=body,
                            headers={"Authorization": "Bearer sk-bench"}) as response:
        response.raise_for_status()
        received = 0
        async for data in response.content.iter_any():
            received += data.count(b'"delta":{"content":')
        counts.append(received)


async def _measure(url: str, streams: int) -> tuple[float, list[int]]:
    counts: list[int] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(_read_stream(session, url, counts) for _ in range(streams)))
        return time.perf_counter() - started, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=250, help="content chunks per stream")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="100 chunks per stream")
    args = parser.parse_args()
    chunks = 100 if args.quick else args.chunks

    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    process.start()
    url = parent.recv()
    try:
        control = EmulatorControl(url)
        control.configure(chunk_delay_ms=args.delay_ms)
        text = "word " * chunks
        control._call("POST", "script", {"replies": [{"text": text, "chunk_size": 5}] * args.streams})
        elapsed, counts = asyncio.run(_measure(url, args.streams))
    finally:
        parent.send("stop")
        process.join(10)

    received = sum(counts)
    ideal_rate = args.streams * 1000 / args.delay_ms
    rate = received / elapsed
    ideal_elapsed = chunks * args.delay_ms / 1000
    print(f"{'figure':<34}{'value':>12}")
    print(f"{'streams x chunks':<34}{args.streams:>7} x {chunks}")
    print(f"{'chunks received':<34}{received:>12}")
    print(f"{'wall time (s)':<34}{elapsed:>12.3f}   ideal {ideal_elapsed:.3f}")
    print(f"{'chunk rate (/s)':<34}{rate:>12.0f}   ideal {ideal_rate:.0f}")
    print(f"{'ratio':<34}{rate / ideal_rate:>12.3f}")
    print(json.dumps({"bench": "openai_emulator_throughput",
                      "figures": {"chunks_per_s": round(rate, 1), "streams": args.streams},
                      "baselines": {"ideal_chunks_per_s": ideal_rate},
                      "ratios": {"throughput_ratio": round(rate / ideal_rate, 4)}}))


if __name__ == "__main__":
    main()
