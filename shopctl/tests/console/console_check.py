#!/usr/bin/env python3
"""Drive the saga console (svc-order's GET /console) in headless Chromium against a real stack.

Run by `shopctl console-check`, which starts the stack, signs a customer and a seller up, makes
a product with stock and passes everything here. Each step proves one thing the console promises:

1. login:        the API wants a session; the page asks for a login; a wrong password and a
                 customer are refused; the admin gets in (and, at the very end, logs out).
2. feed:         orders placed through POST /orders appear in the live feed without a reload and
                 reach PAID there (FAILED, for one above the gateway's limit); the state and user
                 filters narrow it.
3. stuck:        with the gateway down, an order is STOCK_RESERVED (checked through the API) and
                 shows under Stuck waiting on svc-payment; it leaves Stuck once the gateway is back.
4. saga:         an order's timeline lists exactly the events of GET /orders/{id}/trace.
5. dead letters: a hand-published malformed order.created is dead-lettered by svc-order and
                 svc-product; replaying a fixed payload from the page ends its saga PAID.
6. contract:     the JSON API behind the page answers as agreed (keys, filters, problems, SSE).
7. overview:     the counts, and the five services up with their figures.

A screenshot of each view goes to --screenshots. Every wait is a poll with a deadline.
Secrets come from the environment: CUSTOMER_TOKEN, CUSTOMER_PASSWORD, ADMIN_TOKEN, ADMIN_PASSWORD,
NATS_OPERATOR_USER, NATS_OPERATOR_PASSWORD.
"""

import argparse
import asyncio
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

import nats
from playwright.async_api import async_playwright, expect

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

STARTED = time.monotonic()


def say(what):
    print(f"console-check: {time.monotonic() - STARTED:6.1f} s  {what}", flush=True)


class Failed(Exception):
    pass


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--order-url", required=True, help="svc-order, which serves the console")
    p.add_argument("--gateway-url", required=True, help="the payment gateway (PUT /v1/faults)")
    p.add_argument("--nats-url", required=True)
    p.add_argument("--product-id", required=True, help="a product with ample stock")
    p.add_argument("--dear-product-id", required=True, help="one priced above the gateway's limit")
    p.add_argument("--customer-id", required=True, help="the user id behind CUSTOMER_TOKEN")
    p.add_argument("--admin-email", required=True)
    p.add_argument("--customer-email", required=True, help="the customer's, whose password is $CUSTOMER_PASSWORD")
    p.add_argument("--screenshots", required=True, type=Path)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    args = p.parse_args()
    for var in ["CUSTOMER_TOKEN", "CUSTOMER_PASSWORD", "ADMIN_TOKEN", "ADMIN_PASSWORD"]:
        if not os.environ.get(var):
            p.error(f"${var} is not set")
    return args


# ---------------------------------------------------------------------------------------------
# The REST side: what the page shows is checked against the services' own answers.


def http(method, url, body=None, token=None, headers=None):
    """(status, parsed JSON or None) of one request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            status, text = res.status, res.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text.decode(errors="replace")


async def until(what, probe, timeout, every=0.25):
    """Polls `probe` until it returns something truthy, for `timeout` seconds at most."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = probe()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Failed(f"{what}: not within {timeout} s (last seen: {last!r})")
        await asyncio.sleep(every)


class Shop:
    def __init__(self, args):
        self.order_url = args.order_url.rstrip("/")
        self.gateway_url = args.gateway_url.rstrip("/")
        self.product_id = args.product_id
        self.dear_product_id = args.dear_product_id
        self.customer_id = args.customer_id
        self.customer = os.environ["CUSTOMER_TOKEN"]
        self.admin = os.environ["ADMIN_TOKEN"]

    def place_order(self, product_id=None):
        body = {"productId": product_id or self.product_id, "quantity": 1, "paymentMethod": "CARD"}
        status, order = http(
            "POST", f"{self.order_url}/orders", body, self.customer, {"Idempotency-Key": str(uuid.uuid4())}
        )
        if status not in (200, 201, 202) or not isinstance(order, dict) or "id" not in order:
            raise Failed(f"POST /orders answered {status}: {order}")
        return order["id"]

    def order(self, order_id):
        """The order as its owner sees it, or None (404)."""
        status, order = http("GET", f"{self.order_url}/orders/{order_id}", token=self.customer)
        if status == 404:
            return None
        if status != 200:
            raise Failed(f"GET /orders/{order_id} answered {status}: {order}")
        return order

    def status_of(self, order_id):
        order = self.order(order_id)
        return order and order.get("status")

    def trace(self, order_id):
        status, trace = http("GET", f"{self.order_url}/orders/{order_id}/trace", token=self.admin)
        if status != 200:
            raise Failed(f"GET /orders/{order_id}/trace answered {status}: {trace}")
        return [(e["id"], e["type"]) for e in trace["events"]]

    def gateway_down(self, down):
        status, view = http("PUT", f"{self.gateway_url}/v1/faults", {"down": down})
        if status != 200 or not isinstance(view, dict) or view.get("down") is not down:
            raise Failed(f"PUT /v1/faults {{down: {down}}} answered {status}: {view}")
        return view

    def gateway_refusals(self):
        status, view = http("GET", f"{self.gateway_url}/v1/faults")
        if status != 200:
            raise Failed(f"GET /v1/faults answered {status}: {view}")
        return view["fired"]["refusedWhileDown"]


# ---------------------------------------------------------------------------------------------
# The page


def tid(name):
    return f'[data-testid="{name}"]'


async def shoot(page, shots, name):
    path = shots / f"{name}.png"
    await page.screenshot(path=str(path))
    say(f"screenshot {path}")


async def assert_not_reloaded(page):
    if await page.evaluate("window.__consoleCheck") != "still the same page":
        raise Failed("the page was reloaded (or navigated away), yet everything must arrive live")


async def open_view(page, view):
    await page.click(tid(f"nav-{view}"))
    await expect(page.locator(tid(f"view-{view}"))).to_be_visible(timeout=5000)


def expect_problem(method, url, body, status, code):
    got, problem = http(method, url, body)
    if got != status or not isinstance(problem, dict) or problem.get("code") != code:
        raise Failed(f"{method} {url} answered {got} {problem}, not {status} {code}")


async def step_login(page, args, shop):
    api = f"{shop.order_url}/console/api"
    expect_problem("GET", f"{api}/overview", None, 401, "UNAUTHENTICATED")
    customer = {"email": args.customer_email, "password": os.environ["CUSTOMER_PASSWORD"]}
    expect_problem("POST", f"{api}/login", customer, 403, "FORBIDDEN")
    wrong = {"email": args.admin_email, "password": "not-the-password"}
    expect_problem("POST", f"{api}/login", wrong, 401, "INVALID_CREDENTIALS")
    say("login: the API wants a session; it refuses a customer (403) and a wrong password (401)")
    await page.goto(f"{shop.order_url}/console")
    form = page.locator(tid("login-form"))
    await expect(form).to_be_visible(timeout=10_000)
    await expect(page.locator(tid("nav"))).to_be_hidden()
    await page.fill(tid("login-email"), args.customer_email)
    await page.fill(tid("login-password"), os.environ["CUSTOMER_PASSWORD"])
    await page.click(tid("login-submit"))
    await expect(page.locator(tid("login-error"))).to_contain_text("not an admin", timeout=10_000)
    await page.fill(tid("login-email"), args.admin_email)
    await page.fill(tid("login-password"), "not-the-password")
    await page.click(tid("login-submit"))
    await expect(page.locator(tid("login-error"))).to_contain_text("Wrong email or password", timeout=10_000)
    say("login: the page refuses a customer and a wrong password")
    await page.fill(tid("login-password"), os.environ["ADMIN_PASSWORD"])
    await shoot(page, args.screenshots, "login")
    await page.click(tid("login-submit"))
    await expect(page.locator(tid("view-overview"))).to_be_visible(timeout=10_000)
    await expect(page.locator(tid("conn-status"))).to_have_attribute("data-state", "connected", timeout=10_000)
    # Set once: it survives every in-page navigation and vanishes with a reload.
    await page.evaluate("window.__consoleCheck = 'still the same page'")
    say("login: the admin is in, the live stream is connected")


async def step_logout(page, shop):
    await page.click(tid("logout"))
    await expect(page.locator(tid("login-form"))).to_be_visible(timeout=10_000)
    await expect(page.locator(tid("conn-status"))).to_have_attribute("data-state", "offline")
    await page.reload()
    await expect(page.locator(tid("login-form"))).to_be_visible(timeout=10_000)
    await expect(page.locator(tid("nav"))).to_be_hidden()
    say("logout: back to the login form, which a reload keeps (the session is gone)")


async def step_feed(page, args, shop):
    await open_view(page, "feed")
    ids = []
    for _ in range(3):
        ids.append(shop.place_order())
    say(f"feed: placed {len(ids)} orders through POST /orders: {', '.join(ids)}")
    for order_id in ids:
        row = page.locator(f'{tid("feed-row")}[data-order-id="{order_id}"]')
        await expect(row).to_be_visible(timeout=15_000)
        await expect(row).to_have_attribute("data-status", "PAID", timeout=30_000)
    declined = shop.place_order(shop.dear_product_id)
    row = page.locator(f'{tid("feed-row")}[data-order-id="{declined}"]')
    await expect(row).to_be_visible(timeout=15_000)
    await expect(row).to_have_attribute("data-status", "FAILED", timeout=30_000)
    await expect(row).to_contain_text("PAYMENT_DECLINED")
    await assert_not_reloaded(page)
    say(f"feed: all three appeared live and reached PAID in the feed; {declined} (above the gateway's limit) FAILED")

    rows = page.locator(tid("feed-row"))
    await page.select_option(tid("filter-state"), "PAID")
    await page.fill(tid("filter-user"), shop.customer_id)

    async def only_paid_of_customer():
        statuses = await rows.evaluate_all("rs => rs.map(r => r.dataset.status)")
        ours = [i for i in ids if await page.locator(f'{tid("feed-row")}[data-order-id="{i}"]').count()]
        return statuses and all(s == "PAID" for s in statuses) and len(ours) == len(ids)

    await until("feed filtered on PAID and the customer shows their three orders", only_paid_of_customer, 15)
    await page.fill(tid("filter-user"), str(uuid.uuid4()))
    await expect(page.locator(tid("feed-empty"))).to_be_visible(timeout=15_000)
    await expect(rows).to_have_count(0)
    await page.select_option(tid("filter-state"), "STOCK_RESERVED")
    await page.click(tid("filter-clear"))
    await expect(page.locator(f'{tid("feed-row")}[data-order-id="{ids[0]}"]')).to_be_visible(timeout=15_000)
    say("feed: the state and user filters narrow it (reconnecting the stream), Clear restores it")
    await shoot(page, args.screenshots, "feed")
    return ids


async def step_overview(page, args, shop, placed):
    await open_view(page, "overview")

    async def counts_paid():
        text = await page.locator(tid("count-PAID")).text_content()
        return text and text.isdigit() and int(text) >= placed

    await until(f"the overview counts at least {placed} PAID sagas", counts_paid, 10)
    services = ["svc-user", "svc-product", "svc-order", "svc-payment", "svc-settlement"]
    for name in services:
        await expect(page.locator(tid(f"service-{name}"))).to_have_attribute("data-up", "true", timeout=10_000)
    await expect(page.locator(f'{tid("service-svc-payment")} .breaker')).to_have_text("CLOSED", timeout=10_000)
    for name in ["svc-order", "svc-product"]:
        # Both refused the malformed event of the dead-letter step.
        cell = page.locator(f'{tid(f"service-{name}")} {tid("dead-letters")}')
        await expect(cell).to_have_text(re.compile(r"^[1-9]"), timeout=10_000)
    say("overview: PAID counted, the five services up, svc-payment's breaker CLOSED, dead letters counted")
    await shoot(page, args.screenshots, "overview")


async def step_stuck(page, args, shop):
    await open_view(page, "stuck")
    await page.fill(tid("stuck-threshold"), "2")
    refused_before = shop.gateway_refusals()
    shop.gateway_down(True)
    say("stuck: the payment gateway is down")
    try:
        order_id = shop.place_order()
        await until(
            f"order {order_id} is STOCK_RESERVED (the saga reached svc-payment)",
            lambda: shop.status_of(order_id) == "STOCK_RESERVED",
            15,
        )
        await until(
            "the gateway refuses svc-payment's charge (proof the fault fired)",
            lambda: shop.gateway_refusals() > refused_before,
            15,
        )
        row = page.locator(f'{tid("stuck-row")}[data-order-id="{order_id}"]')
        await expect(row).to_be_visible(timeout=15_000)
        await expect(row.locator(tid("waiting-on"))).to_have_text("svc-payment")
        await expect(row).to_have_attribute("data-status", "STOCK_RESERVED")
        status = shop.status_of(order_id)
        if status != "STOCK_RESERVED":
            raise Failed(f"order {order_id} is {status} while the gateway is down")
        say(f"stuck: order {order_id} is STOCK_RESERVED (API) and stuck waiting on svc-payment (page)")
        await assert_not_reloaded(page)
        await shoot(page, args.screenshots, "stuck")
    finally:
        shop.gateway_down(False)
    say("stuck: the payment gateway is back")
    # svc-payment's breaker may be open: its next probe can take a few seconds.
    await expect(row).to_have_count(0, timeout=60_000)
    await until(f"order {order_id} is PAID", lambda: shop.status_of(order_id) == "PAID", 30)
    say(f"stuck: order {order_id} left Stuck and is PAID")
    return order_id


async def timeline_matches_trace(page, shop, order_id, what):
    events = page.locator(tid("timeline-event"))

    async def same():
        shown = await events.evaluate_all("es => es.map(e => [e.dataset.eventId, e.dataset.eventType])")
        traced = shop.trace(order_id)
        same.last = (shown, traced)
        return traced and [tuple(s) for s in shown] == traced

    try:
        await until(f"{what}: the timeline shows the events of GET /orders/{order_id}/trace", same, 20)
    except Failed as e:
        raise Failed(f"{e}; page {same.last[0]} vs trace {same.last[1]}") from None
    return same.last[1]


async def step_saga(page, args, shop, order_id):
    await open_view(page, "feed")
    await page.click(f'{tid("feed-row")}[data-order-id="{order_id}"] td:nth-child(3)')
    await expect(page.locator(tid("view-saga"))).to_be_visible(timeout=5000)
    await expect(page.locator(tid("saga-id"))).to_have_text(order_id)
    await expect(page.locator(tid("saga-status"))).to_have_attribute("data-status", "PAID", timeout=15_000)
    traced = await timeline_matches_trace(page, shop, order_id, "saga")
    types = [t for _, t in traced]
    for needed in ["order.created", "stock.reserved", "payment.completed", "order.paid"]:
        if needed not in types:
            raise Failed(f"the trace of {order_id} has no {needed}: {types}")
    for lane in ["svc-order", "svc-product", "svc-payment"]:
        await expect(page.locator(tid(f"lane-{lane}"))).to_be_visible()
    await expect(page.locator(tid("saga-watch"))).to_contain_text(order_id)
    await shoot(page, args.screenshots, "saga")
    first_id = traced[0][0]
    await page.click(f'{tid("timeline-event")}[data-event-id="{first_id}"] summary')
    envelope = page.locator(f'{tid("timeline-event")}[data-event-id="{first_id}"] pre.json')
    await expect(envelope).to_be_visible()
    await expect(envelope).to_contain_text(first_id)
    # Each event after the first names its cause.
    paid = [i for i, t in traced if t == "order.paid"][0]
    await expect(page.locator(f'{tid("timeline-event")}[data-event-id="{paid}"] .cause')).to_contain_text("caused by")
    say(f"saga: the timeline of {order_id} shows its {len(traced)} events ({', '.join(types)}), as the trace does")


async def step_dead_letters(page, args, shop, js):
    order_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    envelope = {
        "id": event_id,
        "type": "order.created",
        "correlationId": order_id,
        "causationId": None,
        "occurredAt": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "producer": "by-hand",
        "version": 1,
        "data": {
            "orderId": order_id,
            "userId": shop.customer_id,
            "productId": shop.product_id,
            "quantity": "one",
            "paymentMethod": "CARD",
        },
    }
    subject = f"order.created.{order_id}"
    ack = await js.publish(subject, json.dumps(envelope).encode(), headers={"Nats-Msg-Id": event_id}, timeout=5)
    say(f"dead letters: published a malformed order.created (quantity \"one\") on {subject}, stream seq {ack.seq}")

    await open_view(page, "dead-letters")
    cards = page.locator(f'{tid("dead-letter")}[data-message-id="{event_id}"]')

    async def refused_by_order_and_product():
        services = await cards.evaluate_all("cs => cs.map(c => c.dataset.service)")
        return {"svc-order", "svc-product"} <= set(services) and services

    services = await until(
        "svc-order and svc-product dead-letter the malformed event", refused_by_order_and_product, 20
    )
    say(f"dead letters: refused by {', '.join(sorted(services))}")
    for i in range(await cards.count()):
        await expect(cards.nth(i)).to_have_attribute("data-replayed", "false")
        await expect(cards.nth(i).locator(tid("dl-reason"))).not_to_be_empty()
    if shop.order(order_id) is not None:
        raise Failed(f"the malformed order.created made an order {order_id}")
    await shoot(page, args.screenshots, "dead-letters")

    card = page.locator(f'{tid("dead-letter")}[data-message-id="{event_id}"][data-service="svc-order"]')
    payload = card.locator(tid("dl-payload"))
    fixed = json.loads(await payload.input_value())
    if fixed.get("data", {}).get("quantity") != "one":
        raise Failed(f"the page shows a payload that is not the one published: {fixed}")
    fixed["data"]["quantity"] = 1
    await payload.fill(json.dumps(fixed, indent=2))
    await card.locator(tid("dl-replay")).click()
    result = card.locator(tid("dl-result"))
    try:
        await expect(result).to_have_attribute("data-outcome", "published", timeout=10_000)
    except AssertionError:
        raise Failed(f"replay from the page failed: {await result.text_content()}") from None
    say(f"dead letters: replayed with quantity 1 from the page: {await result.text_content()}")
    for service in services:
        one = page.locator(f'{tid("dead-letter")}[data-message-id="{event_id}"][data-service="{service}"]')
        await expect(one).to_have_attribute("data-replayed", "true", timeout=10_000)
    say("dead letters: every dead letter of that message is marked replayed")

    await until(f"the replayed order {order_id} is PAID", lambda: shop.status_of(order_id) == "PAID", 30)
    await card.locator(tid("dl-open-saga")).click()
    await expect(page.locator(tid("view-saga"))).to_be_visible(timeout=5000)
    await expect(page.locator(tid("saga-status"))).to_have_attribute("data-status", "PAID", timeout=15_000)
    traced = await timeline_matches_trace(page, shop, order_id, "replayed saga")
    say(f"dead letters: the fixed saga {order_id} is PAID on the page, its timeline has {len(traced)} events")
    await open_view(page, "dead-letters")
    await shoot(page, args.screenshots, "dead-letters-replayed")
    return order_id, ("svc-order", await card.get_attribute("data-seq"))


# ---------------------------------------------------------------------------------------------
# The API behind the page, checked against its contract (svc-order/src/console), as the admin's
# bearer token: what the page relies on without showing it all.

SERVICES = ["svc-user", "svc-product", "svc-order", "svc-payment", "svc-settlement"]
STATES = ["PENDING", "STOCK_RESERVED", "PAID", "FAILED", "CANCELLED", "EXPIRED"]
SAGA_KEYS = {"orderId", "userId", "productId", "quantity", "status", "failureReason", "amount", "createdAt",
             "updatedAt", "deadlineAt", "ageMs", "lastEvent", "waitingOn"}
SERVICE_KEYS = {"name", "up", "error", "version", "outbox", "consumers", "lag", "deadLetters", "gateway"}
EVENT_KEYS = {"id", "type", "subject", "producer", "occurredAt", "causationId", "sinceStartMs", "sincePreviousMs",
              "envelope"}
DEAD_LETTER_KEYS = {"service", "seq", "consumer", "subject", "messageId", "streamSeq", "deliveries", "reason",
                    "payload", "createdAt", "replayedAt"}
WAITING_ON = {"PENDING": "svc-product", "STOCK_RESERVED": "svc-payment"}


def has_keys(what, value, keys):
    if not isinstance(value, dict):
        raise Failed(f"{what} is not an object: {value!r}")
    missing = keys - value.keys()
    if missing:
        raise Failed(f"{what} lacks {sorted(missing)}: {value}")


def check_saga_summary(what, saga):
    has_keys(what, saga, SAGA_KEYS)
    if saga["status"] not in STATES:
        raise Failed(f"{what} has status {saga['status']!r}")
    if saga["waitingOn"] != WAITING_ON.get(saga["status"]):
        raise Failed(f"{what} is {saga['status']} but waits on {saga['waitingOn']!r}")
    if saga["amount"] is not None and not isinstance(saga["amount"], int):
        raise Failed(f"{what} has a non-integer amount {saga['amount']!r}")
    if saga["lastEvent"] is not None:
        has_keys(f"{what}.lastEvent", saga["lastEvent"], {"type", "producer", "occurredAt"})


def read_stream(url, token, wanted, timeout=10):
    """The event names seen on an SSE stream until all of `wanted` came (or the deadline)."""
    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        conn.request("GET", f"{parts.path}?{parts.query}", headers=headers)
        res = conn.getresponse()
        if res.status != 200 or not res.getheader("Content-Type", "").startswith("text/event-stream"):
            raise Failed(f"GET {url} answered {res.status} {res.getheader('Content-Type')}: {res.read(500)!r}")
        seen, deadline = {}, time.monotonic() + timeout
        event = None
        while time.monotonic() < deadline and not wanted <= seen.keys():
            line = res.fp.readline().decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event:
                seen[event] = json.loads(line[5:])
            elif not line:
                event = None
        if not wanted <= seen.keys():
            raise Failed(f"GET {url}: only {sorted(seen)} within {timeout} s, wanted {sorted(wanted)}")
        return seen
    finally:
        conn.close()


async def step_contract(shop, order_id, dead_letter):
    api = f"{shop.order_url}/console/api"
    get = lambda path: http("GET", f"{api}{path}", token=shop.admin)  # noqa: E731

    status, overview = get("/overview")
    if status != 200:
        raise Failed(f"GET /console/api/overview answered {status}: {overview}")
    has_keys("overview", overview, {"at", "sagas", "ordersPerSecond", "services"})
    if sorted(overview["sagas"]) != sorted(STATES) or not all(isinstance(n, int) for n in overview["sagas"].values()):
        raise Failed(f"overview.sagas is not a count per state: {overview['sagas']}")
    if [s.get("name") for s in overview["services"]] != SERVICES:
        raise Failed(f"overview.services are not the five in order: {[s.get('name') for s in overview['services']]}")
    for service in overview["services"]:
        has_keys(f"overview service {service['name']}", service, SERVICE_KEYS)
        if (service["gateway"] is not None) != (service["name"] == "svc-payment"):
            raise Failed(f"only svc-payment has a gateway: {service}")
    breaker = overview["services"][3]["gateway"]
    has_keys("svc-payment's gateway", breaker, {"breaker", "url"})
    if breaker["breaker"] not in ("CLOSED", "OPEN", "HALF_OPEN"):
        raise Failed(f"svc-payment's breaker is {breaker['breaker']!r}")

    status, feed = get(f"/sagas?user={shop.customer_id}&limit=3")
    if status != 200 or len(feed.get("sagas", [])) != 3:
        raise Failed(f"GET /console/api/sagas?user=..&limit=3 answered {status}: {feed}")
    for saga in feed["sagas"]:
        check_saga_summary("a feed saga", saga)
        if saga["userId"] != shop.customer_id:
            raise Failed(f"the user filter let {saga} through")
    stamps = [datetime.fromisoformat(s["updatedAt"]) for s in feed["sagas"]]
    if stamps != sorted(stamps, reverse=True):
        raise Failed(f"the feed is not newest first: {stamps}")
    status, paid = get("/sagas?state=PAID")
    if status != 200 or not paid["sagas"] or any(s["status"] != "PAID" for s in paid["sagas"]):
        raise Failed(f"GET /console/api/sagas?state=PAID answered {status}: {paid}")
    for bad in ["state=BOGUS", "user=not-a-uuid", "product=42"]:
        got, problem = get(f"/sagas?{bad}")
        if got != 400 or not isinstance(problem, dict) or "code" not in problem:
            raise Failed(f"GET /console/api/sagas?{bad} answered {got} {problem}, not a 400 problem")

    status, stuck = get("/stuck?olderThanSecs=1")
    if status != 200 or stuck.get("olderThanSecs") != 1 or not isinstance(stuck.get("sagas"), list):
        raise Failed(f"GET /console/api/stuck?olderThanSecs=1 answered {status}: {stuck}")

    status, saga = get(f"/sagas/{order_id}")
    if status != 200:
        raise Failed(f"GET /console/api/sagas/{order_id} answered {status}: {saga}")
    has_keys("a saga", saga, {"order", "events", "watch"})
    check_saga_summary("a saga's order", saga["order"])
    for event in saga["events"]:
        has_keys("a timeline event", event, EVENT_KEYS)
        if event["envelope"].get("id") != event["id"]:
            raise Failed(f"a timeline event's envelope is not its event: {event}")
    if not saga["watch"] or not all(order_id in line for line in saga["watch"]):
        raise Failed(f"the saga's watch lines do not name it: {saga['watch']}")
    expect_problem("GET", f"{api}/sagas/{uuid.uuid4()}", None, 401, "UNAUTHENTICATED")
    got, problem = get(f"/sagas/{uuid.uuid4()}")
    if got != 404 or problem.get("code") != "ORDER_NOT_FOUND":
        raise Failed(f"GET /console/api/sagas/<unknown> answered {got} {problem}, not 404 ORDER_NOT_FOUND")

    status, dead = get("/dead-letters")
    if status != 200:
        raise Failed(f"GET /console/api/dead-letters answered {status}: {dead}")
    has_keys("dead letters", dead, {"services", "deadLetters"})
    if sorted(s.get("service") for s in dead["services"]) != sorted(SERVICES):
        raise Failed(f"the dead letters do not cover every service: {dead['services']}")
    for entry in dead["services"]:
        has_keys("a service's dead-letter count", entry, {"service", "total", "error"})
    for letter in dead["deadLetters"]:
        has_keys("a dead letter", letter, DEAD_LETTER_KEYS)
    service, seq = dead_letter
    got, problem = http("POST", f"{api}/dead-letters/{service}/{seq}/replay", {"payload": "{not json"}, shop.admin)
    if got != 422 or not isinstance(problem, dict) or "code" not in problem:
        raise Failed(f"replaying a payload that is not JSON answered {got} {problem}, not a 422 problem")
    got, problem = http("POST", f"{api}/dead-letters/{service}/999999/replay", {}, shop.admin)
    if got != 404:
        raise Failed(f"replaying a dead letter that does not exist answered {got} {problem}, not 404")

    seen = read_stream(f"{api}/stream?state=PAID&stuckSecs=1", shop.admin, {"overview", "feed", "stuck"})
    if any(s["status"] != "PAID" for s in seen["feed"]["sagas"]) or seen["stuck"].get("olderThanSecs") != 1:
        raise Failed(f"the stream ignores its filters: {seen['feed']} {seen['stuck']}")
    got, problem = get("/stream?user=nope")
    if got != 400:
        raise Failed(f"GET /console/api/stream?user=nope answered {got} {problem}, not 400")
    say("contract: overview, feed, stuck, saga, dead letters, replay refusals and the stream answer as agreed")


async def main():
    args = parse_args()
    args.screenshots.mkdir(parents=True, exist_ok=True)
    (args.screenshots / "failure.png").unlink(missing_ok=True)  # left by an earlier run
    shop = Shop(args)
    servers = [s.strip() for s in args.nats_url.split(",") if s.strip()]
    nc = await nats.connect(
        servers=servers,
        user=os.environ.get("NATS_OPERATOR_USER", "operator"),
        password=os.environ.get("NATS_OPERATOR_PASSWORD", "operator-dev-password"),
        connect_timeout=5,
        max_reconnect_attempts=2,
    )
    errors = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
                page = await context.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                await step_login(page, args, shop)
                ids = await step_feed(page, args, shop)
                stuck = await step_stuck(page, args, shop)
                await step_saga(page, args, shop, stuck)
                replayed, dead_letter = await step_dead_letters(page, args, shop, nc.jetstream())
                await step_contract(shop, replayed, dead_letter)
                # Last: by now it has every kind of figure to show (and a screenshot worth it).
                await step_overview(page, args, shop, len(ids) + 2)
                await assert_not_reloaded(page)
                await step_logout(page, shop)
                if errors:
                    raise Failed(f"the page threw: {errors}")
            except BaseException:
                if "page" in locals():
                    try:
                        await shoot(page, args.screenshots, "failure")
                    except Exception:
                        pass
                raise
            finally:
                await browser.close()
    finally:
        await nc.close()
    say("PASSED")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (Failed, AssertionError) as e:
        say(f"FAILED: {e}")
        sys.exit(1)
