#!/usr/bin/env python3
"""A test suite of 50 tests against the PostgreSQL image of
examples/postgres, run two ways:

  pristine  each test gets its own container from the image (the seed data
            is in the image), changes the data, checks that it sees exactly
            the seed plus its own change, and throws the container away;
            all tests at once.
  reset     the classic alternative: one database container for the whole
            suite, reset between tests (truncate every table and reload the
            seed), the tests one after another.

  suite.py [--engine "berth --root R"] [--network NET] [--mode pristine|reset]
  suite.py --ready N     start N containers at once, time until all accept
                         a query, remove them

The engine is any docker-compatible command line (berth, docker, podman);
the test reaches each container at its address on the engine's bridge, so
nothing is published on the host. Prints `N passed, N failed` and exits 1
on a failure."""

import argparse
import concurrent.futures
import os
import shlex
import subprocess
import sys
import threading
import time
import uuid

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = os.path.join(HERE, "..", "postgres", "seed.sql")
TESTS = 50
READY_TIMEOUT = 300

# What the seed holds (examples/postgres/seed.sql).
CUSTOMERS, PRODUCTS, ORDERS = 1000, 100, 5000
STOCK = PRODUCTS * 1000
PRICES = 100 * PRODUCTS * (PRODUCTS + 1) // 2


class Engine:
    def __init__(self, argv, network):
        self.argv = argv
        self.network = network

    def run(self, args, check=True):
        r = subprocess.run(self.argv + args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError(f"{shlex.join(self.argv + args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout.strip()

    def start(self, image, name):
        """Runs a container of `image` detached; its address on the bridge."""
        net = ["--network", self.network] if self.network else []
        self.run(["run", "-d", "--name", name] + net + [image])
        ip = self.run(["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name]).split()
        if not ip:
            raise RuntimeError(f"container {name} has no address (is it on a bridge network?)")
        return ip[0]

    def remove(self, name):
        self.run(["rm", "-f", name], check=False)


def connect(ip, deadline):
    """A connection to the database at `ip` once it accepts one and
    answers a query (postgres refuses connections while it starts)."""
    while True:
        conn = None
        try:
            # tcp_user_timeout: a lost peer fails the test instead of
            # hanging it.
            conn = psycopg.connect(host=ip, port=5432, user="postgres", dbname="app", connect_timeout=2,
                                   tcp_user_timeout=30000, autocommit=True)
            conn.execute("SELECT 1")
            return conn
        except psycopg.OperationalError:
            if conn is not None:
                conn.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def state(conn):
    """What a test compares: row counts and sums over the three tables."""
    return conn.execute(
        "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM products),"
        " (SELECT count(*) FROM orders), (SELECT coalesce(sum(stock), 0) FROM products),"
        " (SELECT coalesce(sum(price_cents), 0) FROM products),"
        " (SELECT coalesce(sum(quantity), 0) FROM orders)").fetchone()


def seed_state():
    qty = sum(1 + (i % 5) for i in range(1, ORDERS + 1))
    return (CUSTOMERS, PRODUCTS, ORDERS, STOCK, PRICES, qty)


# The tests: each makes one change and says what the state must be after it
# (from the seed's). Five kinds, ten of each with a different target.

def t_delete_customer(conn, i):
    """Deleting a customer removes them and (by cascade) their orders."""
    cid = 1 + i * 17
    n = conn.execute("SELECT count(*), coalesce(sum(quantity), 0) FROM orders WHERE customer_id = %s", (cid,)).fetchone()
    conn.execute("DELETE FROM customers WHERE id = %s", (cid,))
    c, p, o, s, pr, q = seed_state()
    return (c - 1, p, o - n[0], s, pr, q - n[1])


def t_place_orders(conn, i):
    """Placing orders adds them and takes the stock."""
    pid = 1 + i
    with conn.transaction():
        for k in range(i + 1):
            conn.execute("INSERT INTO orders (customer_id, product_id, quantity) VALUES (%s, %s, 2)", (1 + k, pid))
            conn.execute("UPDATE products SET stock = stock - 2 WHERE id = %s", (pid,))
    c, p, o, s, pr, q = seed_state()
    return (c, p, o + i + 1, s - 2 * (i + 1), pr, q + 2 * (i + 1))


def t_reprice(conn, i):
    """A price rise on some products changes the sum of prices."""
    lo = i
    rows = conn.execute("UPDATE products SET price_cents = price_cents * 2 WHERE id > %s AND id <= %s + 10 RETURNING price_cents",
                        (lo, lo)).fetchall()
    c, p, o, s, pr, q = seed_state()
    return (c, p, o, s, pr + sum(r[0] for r in rows) // 2, q)


def t_truncate_orders(conn, i):
    """Clearing the orders of some products leaves customers untouched."""
    n = conn.execute("DELETE FROM orders WHERE product_id <= %s RETURNING quantity", (i + 1,)).fetchall()
    c, p, o, s, pr, q = seed_state()
    return (c, p, o - len(n), s, pr, q - sum(r[0] for r in n))


def t_constraint(conn, i):
    """An oversold product is refused and changes nothing; a new customer
    and product are added."""
    try:
        conn.execute("UPDATE products SET stock = stock - 1001 WHERE id = %s", (1 + i,))
        raise AssertionError("stock went below zero")
    except psycopg.errors.CheckViolation:
        conn.rollback()
    conn.execute("INSERT INTO customers VALUES (%s, 'new', %s)", (5000 + i, f"new{i}@example.test"))
    conn.execute("INSERT INTO products VALUES (%s, 'new', 1, %s)", (5000 + i, i))
    c, p, o, s, pr, q = seed_state()
    return (c + 1, p + 1, o, s + i, pr + 1, q)


KINDS = [t_delete_customer, t_place_orders, t_reprice, t_truncate_orders, t_constraint]


def one_test(conn, n):
    """Test number `n`: it must start from the pristine seed, make its
    change, and see exactly the seed plus that change."""
    kind, i = KINDS[n % len(KINDS)], n // len(KINDS)
    before = state(conn)
    if before != seed_state():
        raise AssertionError(f"not pristine at the start: {before} != {seed_state()}")
    expect = kind(conn, i)
    got = state(conn)
    if got != expect:
        raise AssertionError(f"{kind.__name__}({i}): {got} != {expect}")
    return kind.__name__


def run_pristine(engine, image, tests, jobs, hold=None):
    """Every test in its own container, `jobs` at once. With `hold` (a
    command line), all tests at once: when every one has made its change,
    `hold` runs (e.g. to measure the disk) before any container goes."""
    run = uuid.uuid4().hex[:8]
    barrier = None
    if hold:
        jobs = tests
        barrier = threading.Barrier(tests, action=lambda: subprocess.run(hold, shell=True, check=True))

    def test(n):
        name = f"pristine-{run}-{n}"
        try:
            ip = engine.start(image, name)
            with connect(ip, time.monotonic() + READY_TIMEOUT) as conn:
                kind = one_test(conn, n)
                if barrier:
                    # The change on disk, not only in the WAL and memory.
                    conn.execute("CHECKPOINT")
        except BaseException:
            if barrier:
                barrier.abort()
            raise
        finally:
            if barrier:
                try:
                    barrier.wait(READY_TIMEOUT)
                except threading.BrokenBarrierError:
                    pass
            engine.remove(name)
        return kind

    return report(tests, jobs, test)


def run_reset(engine, image, tests):
    """One container for all tests, reset between them, one at a time."""
    name = f"pristine-reset-{uuid.uuid4().hex[:8]}"
    seed = open(SEED).read()
    try:
        ip = engine.start(image, name)
        with connect(ip, time.monotonic() + READY_TIMEOUT) as conn:

            def test(n):
                try:
                    return one_test(conn, n)
                finally:
                    with conn.transaction():
                        conn.execute("TRUNCATE orders, products, customers RESTART IDENTITY CASCADE")
                        conn.execute(seed)

            return report(tests, 1, test)
    finally:
        engine.remove(name)


def report(tests, jobs, test):
    passed, failed = 0, 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(test, n): n for n in range(tests)}
        for f in concurrent.futures.as_completed(futures):
            n = futures[f]
            try:
                f.result()
                passed += 1
            except Exception as e:  # a failed test is reported, not raised
                failed += 1
                print(f"FAIL test {n}: {e}", file=sys.stderr)
    print(f"{passed} passed, {failed} failed")
    return failed == 0


def all_ready(engine, image, n):
    """Starts `n` containers at once; seconds until every one answers a
    query. The containers are removed afterwards (not timed)."""
    run = uuid.uuid4().hex[:8]
    names = [f"ready-{run}-{k}" for k in range(n)]

    def up(name):
        ip = engine.start(image, name)
        connect(ip, time.monotonic() + READY_TIMEOUT).close()

    t0 = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(up, names))
        return time.monotonic() - t0
    finally:
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(engine.remove, names))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", default="berth", help="the engine's command line (default: berth)")
    ap.add_argument("--network", default="", help="the network to run the containers on (default: the engine's)")
    ap.add_argument("--image", default="pristine/postgres:15")
    ap.add_argument("--mode", choices=["pristine", "reset"], default="pristine")
    ap.add_argument("--tests", type=int, default=TESTS)
    ap.add_argument("--jobs", type=int, default=TESTS, help="tests at once in pristine mode (default: all)")
    ap.add_argument("--ready", type=int, metavar="N", help="only time N containers to all-ready")
    ap.add_argument("--hold", metavar="CMD", help="pristine mode: run CMD once every test has made its change")
    a = ap.parse_args()
    engine = Engine(shlex.split(a.engine), a.network)
    if a.ready:
        print(f"{a.ready} containers ready in {all_ready(engine, a.image, a.ready):.3f} s")
        return
    t0 = time.monotonic()
    ok = run_pristine(engine, a.image, a.tests, a.jobs, a.hold) if a.mode == "pristine" else run_reset(engine, a.image, a.tests)
    print(f"{a.mode}: {a.tests} tests in {time.monotonic() - t0:.3f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
