#!/usr/bin/env python3
"""The NATS services API from a terminal: a stand-in for `nats micro ls|info|stats` and `nats req`.

    .tools/venv/bin/python nats/tools/micro.py ls                    # every service, with its version
    .tools/venv/bin/python nats/tools/micro.py info svc-order        # its endpoints and their subjects
    .tools/venv/bin/python nats/tools/micro.py stats svc-payment     # requests per endpoint
    .tools/venv/bin/python nats/tools/micro.py req ops.svc-product.stats
    .tools/venv/bin/python nats/tools/micro.py req ops.svc-product.dead-letters '{"limit": 5}'

`ls`, `info` and `stats` ask `$SRV.PING|INFO|STATS[.<name>]` and print every answer that arrives
within --wait seconds (one per running instance). `req` sends one request and prints the answer,
or the service's error (its Nats-Service-Error-Code and Nats-Service-Error headers) and exits 1.

Needs nats-py: `.tools/venv/bin/pip install nats-py`. Connects as the operator, like pub.py and
sub.py: --server, else $NATS_URL (comma-separated list allowed), else nats://127.0.0.1:4222;
--user/--password, else $NATS_OPERATOR_USER/$NATS_OPERATOR_PASSWORD, else the development defaults.
"""

import argparse
import asyncio
import json
import os
import sys

import nats


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("verb", choices=["ls", "info", "stats", "req"])
    p.add_argument("target", nargs="?", help="a service name (info, stats) or a subject (req)")
    p.add_argument("body", nargs="?", default="", help="req: the request's JSON body")
    p.add_argument("--server", default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    p.add_argument("--user", default=os.environ.get("NATS_OPERATOR_USER", "operator"))
    p.add_argument("--password", default=os.environ.get("NATS_OPERATOR_PASSWORD", "operator-dev-password"))
    p.add_argument("--wait", type=float, default=1.0, help="seconds to collect answers (ls, info, stats)")
    args = p.parse_args()
    if args.verb == "req" and not args.target:
        p.error("req needs a subject")
    return args


async def collect(nc, subject, wait):
    inbox = nc.new_inbox()
    answers = []

    async def answered(msg):
        answers.append(json.loads(msg.data))

    sub = await nc.subscribe(inbox, cb=answered)
    await nc.publish(subject, b"", reply=inbox)
    await asyncio.sleep(wait)  # a discovery request has no known number of answers: collect for a while
    await sub.unsubscribe()
    return answers


async def main():
    args = parse_args()
    servers = [s.strip() for s in args.server.split(",") if s.strip()]
    auth = {} if any("@" in s for s in servers) else {"user": args.user, "password": args.password}
    nc = await nats.connect(servers=servers, connect_timeout=5, max_reconnect_attempts=0, **auth)
    try:
        if args.verb == "req":
            msg = await nc.request(args.target, args.body.encode("utf-8"), timeout=5)
            headers = msg.headers or {}
            if "Nats-Service-Error-Code" in headers:
                sys.exit(f"micro.py: {headers['Nats-Service-Error-Code']} {headers.get('Nats-Service-Error', '')}")
            print(json.dumps(json.loads(msg.data), indent=2))
            return
        verb = {"ls": "PING", "info": "INFO", "stats": "STATS"}[args.verb]
        subject = f"$SRV.{verb}" + (f".{args.target}" if args.target else "")
        answers = sorted(await collect(nc, subject, args.wait), key=lambda a: (a.get("name", ""), a.get("id", "")))
        if args.verb == "ls":
            print(f"{'name':16} {'version':10} id")
            for a in answers:
                print(f"{a['name']:16} {a['version']:10} {a['id']}")
            if not answers:
                sys.exit("micro.py: no service answered")
        else:
            print(json.dumps(answers, indent=2))
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main())
