#!/usr/bin/env python3
"""Publish one event to JetStream and print the PubAck: a stand-in for `nats pub` + `nats req`.

    .tools/venv/bin/python nats/tools/pub.py order.created.0193... '{"orderId": "..."}' --msg-id evt-1
    .tools/venv/bin/python nats/tools/pub.py order.created.0193... @event.json --msg-id evt-1

Needs nats-py: `.tools/venv/bin/pip install nats-py`. The server comes from --server, else
$NATS_URL (comma-separated list allowed), else nats://127.0.0.1:4222. It connects as the operator:
--user/--password, else $NATS_OPERATOR_USER/$NATS_OPERATOR_PASSWORD, else the development
defaults `./shop up` uses (operator / operator-dev-password); credentials in the URL work too.
"""

import argparse
import asyncio
import json
import os
import sys

import nats
from nats.js.errors import NoStreamResponseError


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("subject", help="e.g. order.created.<orderId>; must be captured by a stream")
    p.add_argument("payload", help="JSON text, or @path to read it from a file (@- for stdin)")
    p.add_argument("--msg-id", help="sets the Nats-Msg-Id header: JetStream drops a repeat within the duplicate window")
    p.add_argument("-H", "--header", action="append", default=[], metavar="KEY=VALUE", help="extra header (repeatable)")
    p.add_argument("--server", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument("--user", default=os.environ.get("NATS_OPERATOR_USER", "operator"))
    p.add_argument("--password", default=os.environ.get("NATS_OPERATOR_PASSWORD", "operator-dev-password"))
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the PubAck")
    return p.parse_args()


def read_payload(arg):
    if arg == "@-":
        text = sys.stdin.read()
    elif arg.startswith("@"):
        with open(arg[1:], encoding="utf-8") as f:
            text = f.read()
    else:
        text = arg
    try:
        json.loads(text)  # events are JSON: refuse to publish a typo
    except json.JSONDecodeError as e:
        sys.exit(f"pub.py: payload is not valid JSON: {e}")
    return text.encode("utf-8")


async def main():
    args = parse_args()
    payload = read_payload(args.payload)
    headers = {}
    for h in args.header:
        key, sep, value = h.partition("=")
        if not sep:
            sys.exit(f"pub.py: --header wants KEY=VALUE, got {h!r}")
        headers[key] = value
    if args.msg_id:
        headers["Nats-Msg-Id"] = args.msg_id

    servers = [s.strip() for s in args.server.split(",") if s.strip()]
    auth = {} if any("@" in s for s in servers) else {"user": args.user, "password": args.password}
    nc = await nats.connect(servers=servers, connect_timeout=args.timeout, max_reconnect_attempts=0, **auth)
    try:
        js = nc.jetstream()
        try:
            ack = await js.publish(args.subject, payload, timeout=args.timeout, headers=headers or None)
        except NoStreamResponseError:
            sys.exit(f"pub.py: no stream captures {args.subject!r} (or JetStream is not enabled)")
        print(json.dumps({"stream": ack.stream, "seq": ack.seq, "duplicate": bool(ack.duplicate)}))
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
