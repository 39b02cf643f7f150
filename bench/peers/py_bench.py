#!/usr/bin/python3
# Benchmark peers for bench/run: the workloads W1..W6 on Python asyncio,
# asyncio with uvloop, and trio, written the way a user of each would.
# See README.md beside this file for the workloads and the output format.
#
#   py_bench.py asyncio|uvloop|trio W1|W2|W3|W4|W5|W6 [N]
#
# Needs Debian's /usr/bin/python3 with python3-uvloop and python3-trio.
import asyncio
import json
import math
import os
import random
import resource
import signal
import sys
import tempfile
import time

now = time.monotonic_ns  # CLOCK_MONOTONIC

W1_TASKS, W1_YIELDS = 100, 10_000
W2_TASKS = 100_000
W4_TASKS = 100_000
W5_PARKED, W5_SHIELDED = 10_000, 1_000
W6_TASKS = 1_000


def fail(message):
    print(f"py_bench: {message}", file=sys.stderr)
    sys.exit(1)


def status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    fail(f"no {key} in /proc/self/status")


def rss():
    return status_bytes("VmRSS")


def peak_rss():
    """VmHWM: ru_maxrss carries over an exec from the process that forked
    (bench/run), so no smaller peak would show."""
    return status_bytes("VmHWM")


def delays():
    rng = random.Random(42)
    return [rng.random() for _ in range(W4_TASKS)]


def lateness_stats(late_ns):
    if any(x is None for x in late_ns):
        fail("W4: not every sleeper finished")
    late = sorted(x / 1e6 for x in late_ns)
    return {
        "mean_late_ms": sum(late) / len(late),
        "p99_late_ms": late[math.ceil(0.99 * len(late)) - 1],
        "max_late_ms": late[-1],
    }


def count_lines(out):
    lines = sum(1 for _ in out)
    if lines != W5_SHIELDED:
        fail(f"W5: {lines} lines in the file, not {W5_SHIELDED}")
    return lines


# ---- asyncio (also with uvloop) ----

async def aio_w1():
    async def yielder():
        for _ in range(W1_YIELDS):
            await asyncio.sleep(0)
        return W1_YIELDS

    start = now()
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(yielder()) for _ in range(W1_TASKS)]
    elapsed = now() - start
    if sum(t.result() for t in tasks) != W1_TASKS * W1_YIELDS:
        fail("W1: wrong number of yields")
    return {"ns_per_yield": elapsed / (W1_TASKS * W1_YIELDS)}


async def aio_w2():
    async def noop():
        pass

    start = now()
    async with asyncio.TaskGroup() as tg:
        for _ in range(W2_TASKS):
            tg.create_task(noop())
    elapsed = now() - start
    return {"ns_per_task": elapsed / W2_TASKS, "peak_rss_bytes": peak_rss()}


async def aio_w3(n):
    event = asyncio.Event()  # never set
    parked = 0

    async def park():
        nonlocal parked
        parked += 1
        await event.wait()

    before = rss()
    tasks = [asyncio.create_task(park()) for _ in range(n)]
    while parked < n:
        await asyncio.sleep(0)
    bytes_per_task = (rss() - before) / n
    start = now()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = now() - start
    if not all(t.cancelled() for t in tasks):
        fail("W3: a task did not end cancelled")
    return {"parked": parked, "bytes_per_task": bytes_per_task,
            "ns_per_cancel": elapsed / n}


async def aio_w4():
    ds = delays()
    late = [None] * len(ds)
    began = [None] * len(ds)

    async def sleeper(i, d):
        began[i] = now()
        await asyncio.sleep(d)
        late[i] = now() - (began[i] + d * 1e9)  # intended: d after the sleep began

    t0 = now()
    async with asyncio.TaskGroup() as tg:
        for i, d in enumerate(ds):
            tg.create_task(sleeper(i, d))
    total = now() - t0
    return {"total_ms": total / 1e6, "last_start_ms": (max(began) - t0) / 1e6, **lateness_stats(late)}


async def aio_w5():
    with tempfile.NamedTemporaryFile("r", prefix="py_bench-") as out:
        term = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, term.set)
        forever = asyncio.Event()  # never set
        jobs = []  # the shielded work; keep references, as the docs say

        async def append_line():
            await asyncio.sleep(0.2)
            with open(out.name, "a") as f:
                f.write("done\n")

        async def shielded():
            job = asyncio.create_task(append_line())
            jobs.append(job)
            await asyncio.shield(job)

        unshielded = [asyncio.create_task(forever.wait())
                      for _ in range(W5_PARKED)]
        workers = [asyncio.create_task(shielded())
                   for _ in range(W5_SHIELDED)]
        await asyncio.sleep(0.05)
        request_ns = now()
        os.kill(os.getpid(), signal.SIGTERM)

        await term.wait()
        for t in unshielded + workers:
            t.cancel()
        await asyncio.gather(*unshielded, return_exceptions=True)
        unshielded_done = now()
        await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.gather(*jobs)  # let the shielded work finish
        if not all(t.cancelled() for t in unshielded):
            fail("W5: an unshielded task did not end cancelled")
        return {"request_ns": request_ns,
                "unshielded_done_ms": (unshielded_done - request_ns) / 1e6,
                "lines": count_lines(out)}


async def aio_w6():
    running = asyncio.Event()  # the pause gate: set while running
    running.set()
    ticks = 0

    async def worker():
        nonlocal ticks
        while True:
            await running.wait()
            await asyncio.sleep(0.001)
            ticks += 1

    tasks = [asyncio.create_task(worker()) for _ in range(W6_TASKS)]
    await asyncio.sleep(0.2)
    at_pause = ticks
    running.clear()
    await asyncio.sleep(0.2)
    at_resume = ticks
    running.set()
    await asyncio.sleep(0.2)
    at_end = ticks
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"ticks_after_pause": at_resume - at_pause,
            "ticks_after_resume": at_end - at_resume}


# ---- trio ----
# trio (and uvloop) are imported only where used, so that the asyncio runs
# do not carry them in their memory figures.

async def trio_w1():
    import trio

    done = 0

    async def yielder():
        nonlocal done
        for _ in range(W1_YIELDS):
            await trio.sleep(0)
        done += 1

    start = now()
    async with trio.open_nursery() as nursery:
        for _ in range(W1_TASKS):
            nursery.start_soon(yielder)
    elapsed = now() - start
    if done != W1_TASKS:
        fail("W1: not every task finished")
    return {"ns_per_yield": elapsed / (W1_TASKS * W1_YIELDS)}


async def trio_w2():
    import trio

    async def noop():
        pass

    start = now()
    async with trio.open_nursery() as nursery:
        for _ in range(W2_TASKS):
            nursery.start_soon(noop)
    elapsed = now() - start
    return {"ns_per_task": elapsed / W2_TASKS, "peak_rss_bytes": peak_rss()}


async def trio_w3(n):
    import trio

    event = trio.Event()  # never set
    parked = cancelled = 0

    async def park():
        nonlocal parked, cancelled
        parked += 1
        try:
            await event.wait()
        except trio.Cancelled:
            cancelled += 1
            raise

    before = rss()
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(park)
        while parked < n:
            await trio.sleep(0)
        bytes_per_task = (rss() - before) / n
        start = now()
        nursery.cancel_scope.cancel()
    elapsed = now() - start
    if cancelled != n:
        fail(f"W3: {n - cancelled} tasks did not end cancelled")
    return {"parked": parked, "bytes_per_task": bytes_per_task,
            "ns_per_cancel": elapsed / n}


async def trio_w4():
    import trio

    ds = delays()
    late = [None] * len(ds)
    began = [None] * len(ds)

    async def sleeper(i, d):
        began[i] = now()
        await trio.sleep(d)
        late[i] = now() - (began[i] + d * 1e9)  # intended: d after the sleep began

    t0 = now()
    async with trio.open_nursery() as nursery:
        for i, d in enumerate(ds):
            nursery.start_soon(sleeper, i, d)
    total = now() - t0
    return {"total_ms": total / 1e6, "last_start_ms": (max(began) - t0) / 1e6, **lateness_stats(late)}


async def trio_w5():
    import trio

    left = W5_PARKED
    unshielded_done = None

    async def unshielded():
        nonlocal left, unshielded_done
        try:
            await trio.sleep_forever()
        finally:
            left -= 1
            if left == 0:
                unshielded_done = now()

    async def shielded():
        with trio.CancelScope(shield=True):
            await trio.sleep(0.2)
            with open(out.name, "a") as f:
                f.write("done\n")

    with tempfile.NamedTemporaryFile("r", prefix="py_bench-") as out, \
            trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            for _ in range(W5_PARKED):
                nursery.start_soon(unshielded)
            for _ in range(W5_SHIELDED):
                nursery.start_soon(shielded)
            await trio.sleep(0.05)
            request_ns = now()
            os.kill(os.getpid(), signal.SIGTERM)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
        lines = count_lines(out)
    if unshielded_done is None:
        fail("W5: not every unshielded task ended")
    return {"request_ns": request_ns,
            "unshielded_done_ms": (unshielded_done - request_ns) / 1e6,
            "lines": lines}


async def trio_w6():
    import trio

    resumed = trio.Event()  # the pause gate: a fresh, unset event while paused
    resumed.set()
    ticks = 0

    async def worker():
        nonlocal ticks
        while True:
            await resumed.wait()
            await trio.sleep(0.001)
            ticks += 1

    async with trio.open_nursery() as nursery:
        for _ in range(W6_TASKS):
            nursery.start_soon(worker)
        await trio.sleep(0.2)
        at_pause = ticks
        resumed = trio.Event()
        await trio.sleep(0.2)
        at_resume = ticks
        resumed.set()
        await trio.sleep(0.2)
        at_end = ticks
        nursery.cancel_scope.cancel()
    return {"ticks_after_pause": at_resume - at_pause,
            "ticks_after_resume": at_end - at_resume}


# ---- W7: a TCP line-echo server (bench/loadgen measures it) ----

async def aio_w7():
    async def serve(reader, writer):
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a descriptor per connection
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=4096)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


# ---- driver ----

WORKLOADS = {
    "asyncio": {"W1": aio_w1, "W2": aio_w2, "W3": aio_w3,
                "W4": aio_w4, "W5": aio_w5, "W6": aio_w6, "W7": aio_w7},
    "trio": {"W1": trio_w1, "W2": trio_w2, "W3": trio_w3,
             "W4": trio_w4, "W5": trio_w5, "W6": trio_w6},
}
WORKLOADS["uvloop"] = WORKLOADS["asyncio"]


def main(argv):
    if len(argv) not in (3, 4) or argv[1] not in WORKLOADS \
            or argv[2] not in WORKLOADS[argv[1]]:
        fail("usage: py_bench.py asyncio|uvloop|trio W1..W6 [N], asyncio|uvloop W7")
    impl, workload = argv[1], argv[2]
    fn = WORKLOADS[impl][workload]
    args = ()
    if workload == "W3":
        n = int(argv[3]) if len(argv) == 4 else 100_000
        if n < 1:
            fail("W3: N must be positive")
        args = (n,)

    if impl == "trio":
        import trio
        metrics = trio.run(fn, *args)
    else:
        factory = None
        if impl == "uvloop":
            import uvloop
            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            metrics = runner.run(fn(*args))

    for metric, value in metrics.items():
        if isinstance(value, float):
            value = round(value, 2)
        print(json.dumps({"impl": impl, "workload": workload,
                          "metric": metric, "value": value},
                         separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main(sys.argv)
