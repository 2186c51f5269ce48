#!/usr/bin/env python3
"""Print messages on a subject pattern: a stand-in for `nats sub`.

    .tools/venv/bin/python nats/tools/sub.py 'order.>'
    .tools/venv/bin/python nats/tools/sub.py '*.*.<orderId>' --replay   # stored history first

Prints subject, headers and the payload (pretty JSON when it is JSON) for each message until
Ctrl-C. Without --replay this is a plain core-NATS subscription: it sees what is published from
now on. With --replay it reads through JetStream from the first stored message of the stream
that captures the subject (an ephemeral ordered consumer; nothing is acked or left behind).

Needs nats-py: `.tools/venv/bin/pip install nats-py`. The server comes from --server, else
$NATS_URL (comma-separated list allowed), else nats://127.0.0.1:4222. It connects as the operator:
--user/--password, else $NATS_OPERATOR_USER/$NATS_OPERATOR_PASSWORD, else the development
defaults `./shop up` uses (operator / operator-dev-password); credentials in the URL work too.
"""

import argparse
import asyncio
import json
import os
import signal
import sys

import nats
from nats.js.api import DeliverPolicy


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("subject", help="subject or wildcard pattern, e.g. 'order.>' or '*.*.<orderId>'")
    p.add_argument("--replay", action="store_true", help="start from the first message stored in the stream")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages (0: never)")
    p.add_argument("--server", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument("--user", default=os.environ.get("NATS_OPERATOR_USER", "operator"))
    p.add_argument("--password", default=os.environ.get("NATS_OPERATOR_PASSWORD", "operator-dev-password"))
    return p.parse_args()


def render(msg):
    lines = [f"[{msg.subject}]"]
    if msg.reply and msg.reply.startswith("$JS.ACK."):  # delivered by JetStream (--replay)
        meta = msg.metadata
        lines[0] += f" stream={meta.stream} seq={meta.sequence.stream} at {meta.timestamp}"
    for key, value in (msg.headers or {}).items():
        lines.append(f"  {key}: {value}")
    try:
        body = json.dumps(json.loads(msg.data), indent=2, ensure_ascii=False)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = msg.data.decode("utf-8", errors="replace")
    lines.append(body)
    return "\n".join(lines) + "\n"


async def main():
    args = parse_args()
    servers = [s.strip() for s in args.server.split(",") if s.strip()]
    auth = {} if any("@" in s for s in servers) else {"user": args.user, "password": args.password}
    nc = await nats.connect(servers=servers, connect_timeout=5, **auth)

    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, done.set)
    seen = 0

    async def on_msg(msg):
        nonlocal seen
        sys.stdout.write(render(msg))
        sys.stdout.flush()
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    if args.replay:
        js = nc.jetstream()
        await js.subscribe(args.subject, cb=on_msg, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    else:
        await nc.subscribe(args.subject, cb=on_msg)
    print(f"listening on {args.subject!r} at {nc.connected_url.netloc} (Ctrl-C to stop)", file=sys.stderr)
    await done.wait()
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main())
