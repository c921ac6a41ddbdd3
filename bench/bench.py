#!/usr/bin/env python3
"""Side-by-side benchmark of mail-worker (Rust) and Ruby Sidekiq 6.4.1 — run via bench/run.

Everything runs on this machine against one private redis-server and one postfix smtp-sink,
both on free loopback ports. Measured:

1. mail drain: N MailSenderJobs staged in a private list, RENAMEd onto queue:default while the
   processor idles, timed until the sink has counted N more messages;
2. queue overhead: N NoopJobs, timed until queue:default (and, for mail-worker, its in-progress
   lists) is empty;
3. enqueue: push_bulk of 10,000 jobs (Rust vs Ruby) and the web's POST /emails/bulk_send;
4. scaling: mail drain of mail-worker at several WORKER_CONCURRENCY values, drawn as an SVG;
5. a sink capacity check (smtp-source) and a system-wide perf profile of a saturated drain.

Per run: wall time, CPU seconds of the processor process (utime+stime from /proc/<pid>/stat),
its peak RSS (VmHWM), and the CPU of redis-server and smtp-sink over the same window. Every
run is verified afterwards: stat:processed grew by exactly N, nothing failed, nothing is left
in Redis, and the sink counted exactly N messages. Python stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
RELEASE = ROOT / "target" / "release"
POSTFIX = ROOT / ".run" / "postfix"
TICK = os.sysconf("SC_CLK_TCK")
STAGING = "bench:staging"
# A run during which other work (not the processor, Redis or the sink) used more than this
# many cores is repeated; this script's own polling stays well under it.
NOISE_CORES = 0.35


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- processes


class Procs:
    """Every process this script starts, so that all of them are stopped on any exit."""

    def __init__(self) -> None:
        self.live: list[subprocess.Popen] = []

    def start(self, cmd: list[str], logfile: Path, env: dict | None = None, **kw) -> subprocess.Popen:
        out = open(logfile, "ab")
        p = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, cwd=ROOT, **kw,
        )
        out.close()
        self.live.append(p)
        return p

    def stop(self, p: subprocess.Popen, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit code."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if p in self.live:
            self.live.remove(p)
        return p.returncode

    def stop_all(self) -> None:
        for p in reversed(list(self.live)):
            self.stop(p, timeout=10)


PROCS = Procs()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid: int) -> float:
    """utime + stime of a process in seconds (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def system_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / TICK


def wait_for_quiet(limit: float) -> float:
    """Waits (up to `limit` s) until the machine is nearly idle over a 3-second window, so
    that other work (a build, a test run) does not share the 2 cores with the benchmark.
    Returns the busy cores of the last window."""
    deadline = time.monotonic() + limit
    while True:
        b0 = system_busy()
        time.sleep(3)
        busy = (system_busy() - b0) / 3
        if busy < 0.3 or time.monotonic() > deadline:
            if busy >= 0.3:
                log(f"machine still busy ({busy:.2f} cores) after {limit:.0f}s; going on")
            return busy
        log(f"machine busy ({busy:.2f} cores of other work); waiting for it to calm down")


def wait_until(pred, timeout: float, what: str, every: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


# --------------------------------------------------------------------------- redis


class Redis:
    """A minimal RESP2 client (one connection), enough for polling and bookkeeping."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = self.sock.makefile("rb")

    def __call__(self, *args):
        parts = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(parts))
        return self._read()

    def _read(self):
        line = self.buf.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.buf.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")

    def int(self, key: str) -> int:
        return int(self("GET", key) or 0)


# --------------------------------------------------------------------------- smtp-sink


class Sink:
    """postfix's smtp-sink in count mode; its stdout is a stream of `sess=.. mesg=N\\r`."""

    BIN = POSTFIX / "usr" / "sbin" / "smtp-sink"
    SOURCE = POSTFIX / "usr" / "sbin" / "smtp-source"
    ENV = {"LD_LIBRARY_PATH": str(POSTFIX / "usr" / "lib" / "postfix")}

    def __init__(self) -> None:
        self.port = free_port()
        self.out = OUT / "smtp-sink.out"
        self.out.unlink(missing_ok=True)
        self.proc = PROCS.start(
            [str(self.BIN), "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "1000"],
            self.out, env=self.ENV,
        )
        wait_until(self._accepts, 10, "smtp-sink to listen")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(100).startswith(b"220")
        except OSError:
            return False

    def count(self) -> int:
        """Messages accepted so far (DATA completed)."""
        with open(self.out, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200))
            tail = f.read()
        m = re.findall(rb"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0


# --------------------------------------------------------------------------- processors


class Env:
    """The shared services of one bench run."""

    def __init__(self) -> None:
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.redis_proc = PROCS.start(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            OUT / "redis.log",
        )

        def up() -> bool:
            try:
                self.r = Redis(self.redis_port)
                return self.r("PING") == "PONG"
            except OSError:
                return False

        wait_until(up, 10, "redis-server")
        self.sink = Sink()
        log(f"redis-server on :{self.redis_port}, smtp-sink on :{self.sink.port}")

    def start_processor(self, kind: str, concurrency: int, tag: str) -> subprocess.Popen:
        logfile = OUT / f"{tag}.log"
        logfile.unlink(missing_ok=True)
        if kind == "rust":
            env = {
                "REDIS_URL": self.redis_url, "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(self.sink.port), "WORKER_CONCURRENCY": str(concurrency),
                "WORKER_QUEUES": "default", "METRICS_PORT": "0", "SHUTDOWN_TIMEOUT": "10",
                "RUST_LOG": "info,lettre=warn",
            }
            p = PROCS.start([str(RELEASE / "mail-worker")], logfile, env=env)
        else:
            env = {"REDIS_URL": self.redis_url, "SMTP_HOST": "127.0.0.1",
                   "SMTP_PORT": str(self.sink.port)}
            p = PROCS.start(
                ["sidekiq", "-r", "./bench/ruby/jobs.rb", "-c", str(concurrency), "-q", "default",
                 "-t", "10"],
                logfile, env=env,
            )

        def ready() -> bool:
            if p.poll() is not None:
                raise RuntimeError(f"{kind} exited with {p.returncode}; see {logfile}")
            return self.r("SCARD", "processes") >= 1

        wait_until(ready, 60, f"{kind} heartbeat")
        return p

    def stage(self, cls: str, n: int) -> None:
        subprocess.run([str(RELEASE / "mail-bench"), "stage", STAGING, cls, str(n)],
                       env={**os.environ, "REDIS_URL": self.redis_url}, check=True,
                       stdout=subprocess.DEVNULL, timeout=120)
        assert self.r("LLEN", STAGING) == n

    def queue_empty(self) -> bool:
        if self.r("LLEN", "queue:default") != 0:
            return False
        # mail-worker's reliable fetch: jobs being worked on sit in private in-progress lists.
        lists = self.r("HKEYS", "mailworker:inprogress") or []
        return all(self.r("LLEN", k) == 0 for k in lists)


def drain(env: Env, kind: str, concurrency: int, cls: str, n: int, tag: str) -> dict:
    """One timed drain of `n` staged jobs of `cls` by a fresh processor."""
    r = env.r
    r("FLUSHALL")
    p = env.start_processor(kind, concurrency, tag)
    env.stage(cls, n)
    time.sleep(0.5)  # let the processor settle into its blocking fetch
    sink0 = env.sink.count()
    pids = {"proc": p.pid, "redis": env.redis_proc.pid, "sink": env.sink.proc.pid}
    cpu0 = {k: proc_cpu(v) for k, v in pids.items()}
    sys0 = system_busy()
    t0 = time.monotonic()
    r("MULTI")
    r("SADD", "queues", "default")
    r("RENAME", STAGING, "queue:default")
    r("EXEC")
    if cls == "MailSenderJob":
        def done() -> bool:
            return env.sink.count() - sink0 >= n
    else:
        done = env.queue_empty
    timeout = max(120.0, n / 50.0)
    deadline = t0 + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tag}: not drained after {timeout:.0f}s")
        if p.poll() is not None:
            raise RuntimeError(f"{tag}: processor exited with {p.returncode}")
        time.sleep(0.005)
    wall = time.monotonic() - t0
    cpu1 = {k: proc_cpu(v) for k, v in pids.items()}
    sys1 = system_busy()
    hwm = proc_status_kb(p.pid, "VmHWM")
    rc = PROCS.stop(p, timeout=30)
    # Verify: exact counts, nothing failed, nothing left behind.
    processed, failed = r.int("stat:processed"), r.int("stat:failed")
    left = r("LLEN", "queue:default") + r("ZCARD", "retry") + r("ZCARD", "dead")
    sent = env.sink.count() - sink0
    problems = []
    if rc != 0:
        problems.append(f"exit code {rc}")
    if processed != n or failed != 0:
        problems.append(f"stat:processed={processed} stat:failed={failed}, expected {n}/0")
    if left:
        problems.append(f"{left} jobs left in queue/retry/dead")
    if cls == "MailSenderJob" and sent != n:
        problems.append(f"sink counted {sent} messages, expected {n}")
    if problems:
        raise RuntimeError(f"{tag}: " + "; ".join(problems))
    cpu = {k: cpu1[k] - cpu0[k] for k in pids}
    return {
        "tag": tag, "kind": kind, "concurrency": concurrency, "class": cls, "jobs": n,
        "wall_s": wall, "jobs_per_s": n / wall,
        "cpu_s": cpu["proc"], "cpu_s_per_1000": cpu["proc"] / n * 1000,
        "peak_rss_mb": hwm / 1024,
        "redis_cpu_s": cpu["redis"], "sink_cpu_s": cpu["sink"],
        "machine_busy_cores": (sys1 - sys0) / wall,
        # Everything else the machine did meanwhile (this script's polling, kernel work not
        # charged to a process, other users' processes): a noise indicator.
        "other_cores": max(0.0, (sys1 - sys0 - sum(cpu.values())) / wall),
    }


def repeat(fn, runs: int) -> tuple[dict, list[dict]]:
    """`runs` results of fn(i) and their per-metric medians."""
    results = [fn(i) for i in range(runs)]
    med = dict(results[0])
    for k, v in results[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            med[k] = statistics.median(r[k] for r in results)
    med["runs"] = runs
    return med, results


# --------------------------------------------------------------------------- enqueue


def run_child(cmd: list[str], env: dict) -> tuple[dict, int]:
    """Runs a command that prints one JSON line; returns it and the child's peak RSS (KiB)."""
    p = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {p.returncode}")
    return json.loads(out.decode().strip().splitlines()[-1]), usage.ru_maxrss


def enqueue_rust(env: Env, n: int, i: int) -> dict:
    env.r("FLUSHALL")
    res, maxrss = run_child([str(RELEASE / "mail-bench"), "push-bulk", "MailSenderJob", str(n)],
                            {"REDIS_URL": env.redis_url})
    assert env.r("LLEN", "queue:default") == n
    return {"tag": f"enqueue-rust-{i}", "jobs": n, "wall_s": res["wall_s"],
            "jobs_per_s": n / res["wall_s"], "cpu_s_per_1000": res["cpu_s"] / n * 1000,
            "peak_rss_mb": maxrss / 1024}


def enqueue_ruby(env: Env, n: int, i: int) -> dict:
    env.r("FLUSHALL")
    res, maxrss = run_child(["ruby", "bench/ruby/push_bulk.rb", str(n)],
                            {"REDIS_URL": env.redis_url})
    assert env.r("LLEN", "queue:default") == n
    return {"tag": f"enqueue-ruby-{i}", "jobs": n, "wall_s": res["wall_s"],
            "jobs_per_s": n / res["wall_s"], "cpu_s_per_1000": res["cpu_s"] / n * 1000,
            "peak_rss_mb": maxrss / 1024}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


class Web:
    """mail-web on a fresh SQLite database, with a CSRF token from its own cookie."""

    def __init__(self, env: Env) -> None:
        self.port = free_port()
        db = OUT / "web.sqlite3"
        for f in OUT.glob("web.sqlite3*"):
            f.unlink()
        self.proc = PROCS.start(
            [str(RELEASE / "mail-web")], OUT / "web.log",
            env={"PORT": str(self.port), "DATABASE_URL": f"sqlite://{db}",
                 "REDIS_URL": env.redis_url, "RUST_LOG": "info"},
        )
        self.opener = urllib.request.build_opener(NoRedirect)

        def live() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mail-web exited with {self.proc.returncode}; see web.log")
            try:
                return self.get("/health/live").status == 200
            except OSError:
                return False

        wait_until(live, 30, "mail-web /health/live", every=0.1)
        cookie = self.get("/").headers.get_all("Set-Cookie") or []
        m = next((re.match(r"_mail_web_csrf=([0-9a-f]{64})", c) for c in cookie), None)
        if not m:
            raise RuntimeError(f"no CSRF cookie from GET /: {cookie}")
        self.token = m.group(1)

    def get(self, path: str):
        return self.opener.open(f"http://127.0.0.1:{self.port}{path}", timeout=30)

    def post(self, path: str, **form) -> int:
        body = urllib.parse.urlencode({"authenticity_token": self.token, **form}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method="POST",
            headers={"Cookie": f"_mail_web_csrf={self.token}",
                     "Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with self.opener.open(req, timeout=120) as resp:
                return resp.status
        except urllib.error.HTTPError as e:  # the 303 redirect lands here (not followed)
            return e.code


def enqueue_web(env: Env, web: Web, n: int, i: int) -> dict:
    env.r("FLUSHALL")
    cpu0 = proc_cpu(web.proc.pid)
    t0 = time.monotonic()
    status = web.post("/emails/bulk_send", count=str(n))
    wall = time.monotonic() - t0
    cpu = proc_cpu(web.proc.pid) - cpu0
    queued = env.r("LLEN", "queue:default")
    if status != 303 or queued != n:
        raise RuntimeError(f"bulk_send: HTTP {status}, {queued} jobs queued (expected 303, {n})")
    return {"tag": f"enqueue-web-{i}", "jobs": n, "wall_s": wall, "jobs_per_s": n / wall,
            "cpu_s_per_1000": cpu / n * 1000,
            "peak_rss_mb": proc_status_kb(web.proc.pid, "VmHWM") / 1024}


# --------------------------------------------------------------------------- sink capacity


def sink_capacity(env: Env, n: int, reuse: bool, sources: int) -> dict:
    """`sources` smtp-source processes (25 sessions each) pushing n messages of our mail's
    size (1,800 bytes) at the sink."""
    cmd = [str(Sink.SOURCE), "-s", "25", "-m", str(n // sources), "-l", "1800",
           "-f", "bench@example.test", "-t", "sink@example.test"]
    if reuse:
        cmd.append("-d")  # keep the connection for the next message (mail-worker's pool)
    cmd.append(f"127.0.0.1:{env.sink.port}")
    n = n // sources * sources
    c0, n0 = proc_cpu(env.sink.proc.pid), env.sink.count()
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, env={**os.environ, **Sink.ENV}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(sources)]
    for p in procs:
        if p.wait(300) != 0:
            raise RuntimeError(f"smtp-source exited {p.returncode}")
    wait_until(lambda: env.sink.count() - n0 >= n, 30, "sink count", every=0.005)
    wall = time.monotonic() - t0
    mode = "connections reused (`-d`)" if reuse else "one connection per message"
    return {"mode": f"{mode}, {sources} smtp-source process{'es' if sources > 1 else ''}",
            "reuse": reuse, "messages": env.sink.count() - n0, "wall_s": wall,
            "msgs_per_s": n / wall, "sink_cpu_s": proc_cpu(env.sink.proc.pid) - c0,
            "sink_cores": (proc_cpu(env.sink.proc.pid) - c0) / wall}


# --------------------------------------------------------------------------- profile


def perf_works() -> bool:
    if not shutil.which("perf"):
        return False
    r = subprocess.run(["perf", "record", "-a", "-g", "-o", "/dev/null", "--", "true"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def perf_report(data: Path, *args: str) -> str:
    r = subprocess.run(["perf", "report", "-i", str(data), "--stdio", *args],
                       capture_output=True, text=True, timeout=600)
    return r.stdout


def report_rows(text: str) -> list[tuple[float, float | None, str]]:
    """(first %, second % or None, rest of line) of each row of a perf report."""
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(?:([\d.]+)%\s+)?(.*)", line)
        if m and not line.lstrip().startswith("#"):
            rest = re.sub(r"(\s+-)+\s*$", "", m.group(3))  # empty IPC columns
            rows.append((float(m.group(1)), float(m.group(2)) if m.group(2) else None,
                         " ".join(rest.split())))
    return rows


# What the worker's time goes to: (label, symbol regex). Inclusive shares of the worker's own
# samples; they overlap (a send syscall is inside an SMTP write, malloc is everywhere).
WORKER_BUCKETS = [
    ("SMTP writes: lettre `AsyncSmtpConnection::write` (send syscall + loopback TCP, which "
     "also runs the receiving side in softirq)", r"AsyncSmtpConnection::write\b"),
    ("SMTP reads: lettre `read_response`", r"AsyncSmtpConnection::read_response"),
    ("Redis I/O: redis-rs multiplexed pipeline (flush + read)",
     r"multiplexed_connection::PipelineSink<T> as futures_sink::Sink"),
    ("building the MIME message: `mailer::Mailer::compose` (lettre builder, body encoding)",
     r"mail_worker::mailer::Mailer::compose$"),
    ("rendering templates: minijinja `Template::render`", r"minijinja::template::Template::render$"),
    ("JSON logs: tracing-subscriber `fmt::Subscriber::event`",
     r"tracing_subscriber::fmt::Subscriber<N,E,F,W> as tracing_core::subscriber::Subscriber>::event"),
    ("parsing payloads: serde_json `Value::deserialize` (`Job::parse`, twice per job)",
     r"serde_json::value::de::<impl serde_core::de::Deserialize for serde_json::value::Value>::deserialize$"),
    ("reliable fetch: `runner::fetch_loop`", r"mail_worker::runner::fetch_loop::"),
    ("recording the outcome (Lua): `runner::record_until_done`",
     r"mail_worker::runner::record_until_done::"),
]


def profile(env: Env, n: int) -> dict:
    """A drain of mail-worker at concurrency 25 with perf recording the worker alone, with
    DWARF call graphs (what inside it uses the CPU). Which process uses the cores is already
    in every drain's numbers (worker / Redis / sink CPU from /proc)."""
    out: dict = {}
    data = OUT / "perf-worker.data"
    orig = Env.start_processor
    holder: dict = {}

    def with_perf(self, kind, concurrency, tag):
        p = orig(self, kind, concurrency, tag)
        holder["perf"] = subprocess.Popen(
            ["perf", "record", "--call-graph", "dwarf,16384", "-F", "999", "-p", str(p.pid),
             "-o", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        return p

    Env.start_processor = with_perf
    try:
        run = drain(env, "rust", 25, "MailSenderJob", n, "profile-worker")
    finally:
        Env.start_processor = orig
        if "perf" in holder:
            holder["perf"].send_signal(signal.SIGINT)
            holder["perf"].wait(120)
    children = perf_report(data, "--children", "--sort", "symbol", "-g", "none",
                           "--percent-limit", "0.3")
    (OUT / "perf-worker-symbols.txt").write_text(children)
    by_dso = perf_report(data, "--no-children", "--sort", "dso", "-g", "none")
    (OUT / "perf-worker-by-dso.txt").write_text(by_dso)
    rows = report_rows(children)
    buckets = []
    for label, rx in WORKER_BUCKETS:
        share = max((p for p, _, sym in rows if re.search(rx, sym)), default=0.0)
        buckets.append((share, label))
    alloc = sum(selfp or 0 for _, selfp, sym in rows
                if re.search(r"\] (_int_free|_int_malloc|malloc|cfree@GLIBC[\w.]*|"
                             r"malloc_consolidate|realloc|_int_realloc)$", sym))
    buckets.append((alloc, "malloc/free (self time, all callers)"))
    out["worker"] = {"run": run, "buckets": buckets,
                     "by_dso": [(p, name) for p, _, name in report_rows(by_dso) if p >= 1][:6]}
    return out


# --------------------------------------------------------------------------- output


def svg_chart(points: list[dict], ruby: list[dict], sink_rate: float | None, path: Path) -> None:
    """Mails/s against WORKER_CONCURRENCY (log x axis), hand-written SVG."""
    import math
    w, h, ml, mr, mt, mb = 720, 420, 70, 20, 40, 60
    xs = [p["concurrency"] for p in points]
    ymax_data = max([p["jobs_per_s"] for p in points] + [sink_rate or 0])
    step = 10 ** math.floor(math.log10(ymax_data)) if ymax_data > 0 else 1
    ymax = math.ceil(ymax_data * 1.1 / step) * step
    lx0, lx1 = math.log10(min(xs)), math.log10(max(xs))

    pad = 24  # keep the first and last points off the axes

    def X(c: float) -> float:
        return ml + pad + (math.log10(c) - lx0) / (lx1 - lx0) * (w - ml - mr - 2 * pad)

    def Y(v: float) -> float:
        return mt + (1 - v / ymax) * (h - mt - mb)

    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
         f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
         f'<rect width="{w}" height="{h}" fill="white"/>',
         f'<text x="{w/2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">'
         f'mail drain: {points[0]["jobs"]:,} MailSenderJobs, mails/s by concurrency (2 cores)</text>']
    for i in range(0, 6):
        v = ymax * i / 5
        s.append(f'<line x1="{ml}" x2="{w-mr}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#e5e5e5"/>')
        s.append(f'<text x="{ml-8}" y="{Y(v)+4:.1f}" text-anchor="end">{v:,.0f}</text>')
    for c in xs:
        s.append(f'<line x1="{X(c):.1f}" x2="{X(c):.1f}" y1="{mt}" y2="{h-mb}" stroke="#f0f0f0"/>')
        s.append(f'<text x="{X(c):.1f}" y="{h-mb+18}" text-anchor="middle">{c}</text>')
    s.append(f'<line x1="{ml}" x2="{w-mr}" y1="{h-mb}" y2="{h-mb}" stroke="black"/>')
    s.append(f'<line x1="{ml}" x2="{ml}" y1="{mt}" y2="{h-mb}" stroke="black"/>')
    s.append(f'<text x="{(ml+w-mr)/2}" y="{h-15}" text-anchor="middle">'
             'WORKER_CONCURRENCY / sidekiq -c (log scale)</text>')
    s.append(f'<text x="18" y="{(mt+h-mb)/2}" text-anchor="middle" '
             f'transform="rotate(-90 18 {(mt+h-mb)/2})">mails delivered per second</text>')
    if sink_rate:
        s.append(f'<line x1="{ml}" x2="{w-mr}" y1="{Y(sink_rate):.1f}" y2="{Y(sink_rate):.1f}" '
                 'stroke="#999" stroke-dasharray="6 4"/>')
        s.append(f'<text x="{w-mr-4}" y="{Y(sink_rate)-6:.1f}" text-anchor="end" fill="#666">'
                 f'smtp-source → smtp-sink alone, connections reused: {sink_rate:,.0f}/s</text>')
    pts = " ".join(f"{X(p['concurrency']):.1f},{Y(p['jobs_per_s']):.1f}" for p in points)
    s.append(f'<polyline points="{pts}" fill="none" stroke="#c0392b" stroke-width="2.5"/>')
    for p in points:
        runs_ = p.get("runs_jobs_per_s") or [p["jobs_per_s"]]
        if len(runs_) > 1:  # whisker: slowest to fastest run
            s.append(f'<line x1="{X(p["concurrency"]):.1f}" x2="{X(p["concurrency"]):.1f}" '
                     f'y1="{Y(min(runs_)):.1f}" y2="{Y(max(runs_)):.1f}" stroke="#c0392b" '
                     'stroke-opacity="0.45" stroke-width="6"/>')
        s.append(f'<circle cx="{X(p["concurrency"]):.1f}" cy="{Y(p["jobs_per_s"]):.1f}" r="4" '
                 'fill="#c0392b"/>')
        s.append(f'<text x="{X(p["concurrency"]):.1f}" y="{Y(p["jobs_per_s"])-9:.1f}" '
                 f'text-anchor="middle" fill="#c0392b">{p["jobs_per_s"]:,.0f}</text>')
    for p in ruby:
        s.append(f'<rect x="{X(p["concurrency"])-4:.1f}" y="{Y(p["jobs_per_s"])-4:.1f}" '
                 'width="8" height="8" fill="#2c3e50"/>')
        s.append(f'<text x="{X(p["concurrency"])+8:.1f}" y="{Y(p["jobs_per_s"])-6:.1f}" '
                 f'fill="#2c3e50">Ruby {p["jobs_per_s"]:,.0f}</text>')
    lx, ly = ml + 16, mt + 14
    s.append(f'<line x1="{lx}" x2="{lx+24}" y1="{ly}" y2="{ly}" stroke="#c0392b" stroke-width="2.5"/>')
    s.append(f'<text x="{lx+30}" y="{ly+4}">mail-worker (Rust)</text>')
    s.append(f'<rect x="{lx+8}" y="{ly+14}" width="8" height="8" fill="#2c3e50"/>')
    s.append(f'<text x="{lx+30}" y="{ly+22}">Ruby Sidekiq 6.4.1 + mail gem</text>')
    s.append(f'<text x="{lx}" y="{ly+40}" fill="#666">median of {len(points[0].get("runs_jobs_per_s") or [1])} '
             'runs; bar = slowest to fastest run</text>')
    s.append("</svg>")
    path.write_text("\n".join(s) + "\n")


def fmt(v: float, digits: int = 2) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:,.1f}×" if b else "n/a"


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 run each, fewer jobs")
    ap.add_argument("--no-web", action="store_true", help="skip the mail-web measurement")
    ap.add_argument("--wait-quiet", type=float, default=300,
                    help="seconds to wait for other load on the machine to end (default 300)")
    ap.add_argument("--runs", type=int, help="runs per measurement (default 3, quick 1)")
    ap.add_argument("--mail", type=int, help="mails per drain (default 10,000, quick 2,000)")
    ap.add_argument("--noop", type=int, help="no-op jobs per drain (default 100,000, quick 20,000)")
    args = ap.parse_args()
    quick = args.quick or bool(args.mail or args.noop or args.runs)
    runs = args.runs or (1 if args.quick else 3)
    n_mail = args.mail or (2_000 if args.quick else 10_000)
    n_noop = args.noop or (20_000 if args.quick else 100_000)
    n_enq = 10_000
    scaling = [1, 5, 10, 25, 50, 100]
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.time()
    res: dict = {"quick": quick, "runs": runs, "n_mail": n_mail, "n_noop": n_noop,
                 "n_enqueue": n_enq, "loadavg_at_start": os.getloadavg()}
    res["versions"] = {
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip(),
        "worktree_dirty": bool(subprocess.run(["git", "status", "--porcelain", "--", "worker",
                                               "sidekiq-wire", "web"], cwd=ROOT,
                                              capture_output=True, text=True).stdout.strip()),
        "ruby": subprocess.run(["ruby", "-e", "print RUBY_VERSION"], capture_output=True,
                               text=True).stdout,
        "redis": subprocess.run(["redis-server", "--version"], capture_output=True,
                                text=True).stdout.split()[2],
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), "?"),
        "cores": os.cpu_count(),
    }
    res["other_load_before"] = wait_for_quiet(args.wait_quiet)
    env = Env()

    log("sink capacity (smtp-source)")
    n_src = 5_000 if args.quick else 20_000
    res["sink"] = [sink_capacity(env, n_src, reuse=False, sources=1),
                   sink_capacity(env, n_src, reuse=True, sources=1),
                   sink_capacity(env, n_src, reuse=True, sources=2)]
    for s in res["sink"]:
        log(f"  {s['mode']}: {s['msgs_per_s']:,.0f} msgs/s")

    def undisturbed(kind: str, c: int, cls: str, n: int, tag: str) -> dict:
        """One drain; repeated (up to 3 more times, after waiting for quiet) while other work
        on the machine took more than NOISE_CORES of the 2 cores during it. The least
        disturbed attempt is kept."""
        best = None
        for attempt in range(4):
            r = drain(env, kind, c, cls, n, tag if attempt == 0 else f"{tag}-retry{attempt}")
            r["attempts"] = attempt + 1
            if best is None or r["other_cores"] < best["other_cores"]:
                best = r
            if r["other_cores"] <= NOISE_CORES:
                break
            log(f"  {tag}: {r['jobs_per_s']:,.0f} jobs/s but disturbed by "
                f"{r['other_cores']:.2f} cores of other load; repeating")
            wait_for_quiet(60)
        return best

    def drains(configs: list[tuple[str, int]], cls: str, n: int, name: str) -> dict:
        """Each (kind, concurrency) `runs` times, interleaved so that a disturbance on the
        machine hits all of them alike; per-config medians."""
        raw: dict[str, list[dict]] = {f"{k}-c{c}": [] for k, c in configs}
        for i in range(runs):
            for k, c in configs:
                raw[f"{k}-c{c}"].append(undisturbed(k, c, cls, n, f"{name}-{k}-c{c}-{i}"))
        out = {}
        for key, all_ in raw.items():
            med, _ = repeat(lambda i: all_[i], len(all_))
            med["runs_jobs_per_s"] = [r["jobs_per_s"] for r in all_]
            out[key] = med
            res.setdefault("raw", []).extend(all_)
            log(f"  {key}: {med['jobs_per_s']:,.0f} jobs/s, "
                f"{med['cpu_s_per_1000']:.3f} CPU s/1000, {med['peak_rss_mb']:.1f} MB "
                f"(runs: {', '.join(format(r['jobs_per_s'], ',.0f') for r in all_)}; "
                f"other load {med['other_cores']:.2f} cores)")
        return out

    pairs = [("rust", 10), ("rust", 25), ("ruby", 10), ("ruby", 25)]
    log(f"mail drain: {n_mail:,} MailSenderJobs")
    res["mail"] = drains(pairs, "MailSenderJob", n_mail, "mail")

    log(f"queue overhead: {n_noop:,} NoopJobs")
    res["noop"] = drains(pairs, "NoopJob", n_noop, "noop")

    log(f"enqueue: push_bulk of {n_enq:,}")
    res["enqueue"] = {}
    for name, fn in (("rust", enqueue_rust), ("ruby", enqueue_ruby)):
        med, all_ = repeat(lambda i: fn(env, n_enq, i), runs)
        res["enqueue"][name] = med
        log(f"  {name}: {med['wall_s']*1000:.0f} ms")
    web_note = None
    if args.no_web:
        web_note = "skipped (--no-web)"
    elif not (RELEASE / "mail-web").exists():
        web_note = "target/release/mail-web was not built"
    else:
        try:
            web = Web(env)
            if web.post("/emails/generate", count=str(n_enq)) != 303:
                raise RuntimeError("POST /emails/generate failed")
            med, _ = repeat(lambda i: enqueue_web(env, web, n_enq, i), runs)
            res["enqueue"]["web"] = med
            log(f"  web bulk_send: {med['wall_s']*1000:.0f} ms")
            PROCS.stop(web.proc)
        except Exception as e:  # the web is optional for the rest of the benchmark
            web_note = f"failed: {e}"
    if web_note:
        log(f"  web bulk_send {web_note}")
        res["enqueue_web_note"] = web_note

    log(f"scaling: mail-worker, {n_mail:,} mails at concurrency {scaling}")
    extra = drains([("rust", c) for c in scaling if f"rust-c{c}" not in res["mail"]],
                   "MailSenderJob", n_mail, "mail")
    res["scaling"] = [res["mail"].get(f"rust-c{c}") or extra[f"rust-c{c}"] for c in scaling]

    if perf_works():
        n_prof = min(n_mail, 10_000)
        log(f"profile: perf during {n_prof:,}-mail drains at concurrency 25")
        res["profile"] = profile(env, n_prof)
    else:
        res["profile"] = None
        log("perf not usable here; no profile")

    res["elapsed_s"] = time.time() - started
    (OUT / "results.json").write_text(json.dumps(res, indent=2))
    svg = ROOT / "docs" / "bench-scaling.svg"
    svg_chart(res["scaling"], [res["mail"]["ruby-c10"], res["mail"]["ruby-c25"]],
              max(s["msgs_per_s"] for s in res["sink"]), OUT / "bench-scaling.svg")
    if not quick:
        shutil.copy(OUT / "bench-scaling.svg", svg)
    write_markdown(res, OUT / "results.md")
    if not quick:
        shutil.copy(OUT / "results.md", ROOT / "bench" / "results.md")
    log(f"done in {res['elapsed_s']/60:.1f} min: bench/out/results.md"
        + ("" if quick else ", bench/results.md, docs/bench-scaling.svg"))
    return 0


def write_markdown(res: dict, path: Path) -> None:
    m, q, e = res["mail"], res["noop"], res["enqueue"]
    v = res["versions"]
    L = []
    L.append("# mail-worker vs Ruby Sidekiq: benchmark results\n")
    L.append(f"Generated by `bench/run{' --quick' if res['quick'] else ''}` at commit "
             f"`{v['git']}`{' (worker/web tree had uncommitted changes)' if v['worktree_dirty'] else ''}"
             f" on {v['cores']} × {v['cpu']}; Ruby {v['ruby']}, Sidekiq 6.4.1, redis-server "
             f"{v['redis']}, postfix smtp-sink. Median of {res['runs']} run(s); load average at "
             f"start {res['loadavg_at_start'][0]:.2f}. Total bench time "
             f"{res['elapsed_s']/60:.1f} min. Raw runs: `bench/out/results.json`.\n")
    L.append("CPU = utime+stime of the processor process only (not Redis, not the sink), over the "
             "timed window. Peak RSS = its VmHWM. Every run was checked afterwards: "
             "`stat:processed` grew by exactly N, nothing failed or was left in Redis, and for "
             "mail the sink counted exactly N messages.\n")

    def row(name: str, d: dict) -> str:
        return (f"| {name} | {fmt(d['wall_s'])} | {d['jobs_per_s']:,.0f} | "
                f"{d['cpu_s_per_1000']:.3f} | {d['cpu_s'] / d['wall_s']:.2f} | "
                f"{d['peak_rss_mb']:.1f} | {d['redis_cpu_s'] / d['wall_s']:.2f} / "
                f"{d['sink_cpu_s'] / d['wall_s']:.2f} | {d['other_cores']:.2f} |")

    hdr = ("| processor | wall s | jobs/s | CPU s / 1,000 jobs | processor cores | peak RSS MB | "
           "Redis / sink cores | other load (cores) |\n|---|---:|---:|---:|---:|---:|---:|---:|")

    L.append(f"## 1. Mail drain: {res['n_mail']:,} MailSenderJobs to smtp-sink\n")
    L.append(hdr)
    for k, name in (("rust-c10", "mail-worker, concurrency 10"),
                    ("rust-c25", "mail-worker, concurrency 25 (default)"),
                    ("ruby-c10", "Ruby Sidekiq -c 10 (default)"),
                    ("ruby-c25", "Ruby Sidekiq -c 25")):
        L.append(row(name, m[k]))
    L.append("")
    best_ruby = max((m["ruby-c10"], m["ruby-c25"]), key=lambda d: d["jobs_per_s"])
    L.append("| ratio (Rust / Ruby) | throughput | CPU per mail |\n|---|---:|---:|")
    for a, b in (("rust-c10", "ruby-c10"), ("rust-c25", "ruby-c25")):
        L.append(f"| {a} vs {b} | {ratio(m[a]['jobs_per_s'], m[b]['jobs_per_s'])} | "
                 f"1/{m[b]['cpu_s_per_1000'] / m[a]['cpu_s_per_1000']:,.0f} |")
    L.append(f"| rust-c25 vs best Ruby (c={best_ruby['concurrency']}) | "
             f"{ratio(m['rust-c25']['jobs_per_s'], best_ruby['jobs_per_s'])} | "
             f"1/{best_ruby['cpu_s_per_1000'] / m['rust-c25']['cpu_s_per_1000']:,.0f} |\n")

    L.append(f"## 2. Queue overhead: {res['n_noop']:,} NoopJobs\n")
    L.append(hdr)
    for k, name in (("rust-c10", "mail-worker, concurrency 10"),
                    ("rust-c25", "mail-worker, concurrency 25 (default)"),
                    ("ruby-c10", "Ruby Sidekiq -c 10 (default)"),
                    ("ruby-c25", "Ruby Sidekiq -c 25")):
        L.append(row(name, q[k]))
    L.append("")
    L.append("| ratio (Rust / Ruby) | throughput | CPU per job |\n|---|---:|---:|")
    for a, b in (("rust-c10", "ruby-c10"), ("rust-c25", "ruby-c25")):
        L.append(f"| {a} vs {b} | {ratio(q[a]['jobs_per_s'], q[b]['jobs_per_s'])} | "
                 f"1/{q[b]['cpu_s_per_1000'] / q[a]['cpu_s_per_1000']:,.1f} |")
    L.append("")

    L.append(f"## 3. Enqueue: {res['n_enqueue']:,} MailSenderJobs\n")
    L.append("| path | wall ms | jobs/s | CPU s / 1,000 jobs | peak RSS MB |\n"
             "|---|---:|---:|---:|---:|")
    names = {"rust": "Rust `sidekiq_wire::Client::push_bulk` (mail-bench)",
             "ruby": "Ruby `Sidekiq::Client.push_bulk`",
             "web": "mail-web `POST /emails/bulk_send count=10000` (HTTP round trip)"}
    for k in ("rust", "ruby", "web"):
        if k in e:
            d = e[k]
            L.append(f"| {names[k]} | {d['wall_s']*1000:,.0f} | {d['jobs_per_s']:,.0f} | "
                     f"{d['cpu_s_per_1000']:.3f} | {d['peak_rss_mb']:.1f} |")
    if "enqueue_web_note" in res:
        L.append(f"| {names['web']} | {res['enqueue_web_note']} | | | |")
    L.append(f"\npush_bulk ratio Rust / Ruby: {ratio(e['ruby']['wall_s'], e['rust']['wall_s'])} "
             "faster. Wall and CPU are measured inside the process around building the jobs "
             "plus the push (after connecting); peak RSS is the whole process. The web row is "
             "the whole request: picking 10,000 random addresses in SQLite, the mail_jobs row, "
             "and push_bulk; its CPU and RSS are mail-web's.\n")

    L.append("## 4. Sink capacity (is smtp-sink the bottleneck?)\n")
    L.append("| smtp-source → smtp-sink, 25 sessions each, 1,800-byte messages | messages | "
             "msgs/s | sink cores |\n|---|---:|---:|---:|")
    for s in res["sink"]:
        L.append(f"| {s['mode']} | {s['messages']:,} | {s['msgs_per_s']:,.0f} | "
                 f"{s['sink_cores']:.2f} |")
    L.append("")

    L.append(f"## 5. Scaling: mail-worker mail drain by WORKER_CONCURRENCY\n")
    L.append("![scaling chart](../docs/bench-scaling.svg)\n")
    L.append("| concurrency | mails/s | worker CPU s / 1,000 | worker cores | Redis cores | "
             "sink cores | machine busy (cores of 2) | peak RSS MB |\n"
             "|---:|---:|---:|---:|---:|---:|---:|---:|")
    for d in res["scaling"]:
        w = d["wall_s"]
        L.append(f"| {d['concurrency']} | {d['jobs_per_s']:,.0f} | {d['cpu_s_per_1000']:.3f} | "
                 f"{d['cpu_s']/w:.2f} | {d['redis_cpu_s']/w:.2f} | {d['sink_cpu_s']/w:.2f} | "
                 f"{d['machine_busy_cores']:.2f} | {d['peak_rss_mb']:.1f} |")
    L.append("")

    prof = res.get("profile")
    if prof:
        wk = prof["worker"]
        L.append("## 6. Profile: inside mail-worker, mail drain at concurrency 25\n")
        L.append(f"Inside mail-worker (`perf record --call-graph dwarf -p`, "
                 f"{wk['run']['jobs_per_s']:,.0f} mails/s under perf): inclusive share of the "
                 "worker's samples (overlapping):\n")
        L.append("| share | where |\n|---:|---|")
        for p, label in wk["buckets"]:
            L.append(f"| {p:.1f}% | {label} |")
        L.append("")
        L.append("By binary (self time): " + ", ".join(f"{name} {p:.0f}%"
                                                     for p, name in wk["by_dso"]) + ".\n")

    sc = res["scaling"]
    peak = max(sc, key=lambda d: d["jobs_per_s"])
    c1 = sc[0]
    L.append("## Where it saturates, and why\n")
    L.append(
        f"- **Concurrency 1** ({c1['jobs_per_s']:,.0f} mails/s, {1e6 / c1['jobs_per_s']:,.0f} µs "
        "per mail) is latency-bound: per mail the worker makes about 8 loopback round trips "
        "in sequence (reliable-fetch Lua, the idempotency GET, MAIL/RCPT/DATA/body/`.` over "
        "the pooled SMTP connection, the outcome Lua), each needing Redis or the sink to be "
        f"scheduled; the machine is only {c1['machine_busy_cores']:.1f} of 2 cores busy.")
    knee = next(d for d in sc if d["jobs_per_s"] >= 0.9 * peak["jobs_per_s"])
    L.append(
        f"- **It levels off from concurrency ~{knee['concurrency']}** ({knee['jobs_per_s']:,.0f} "
        f"mails/s, ≥ 90% of the peak {peak['jobs_per_s']:,.0f} at {peak['concurrency']}) because "
        f"the 2 cores are used up: at the peak the machine is {peak['machine_busy_cores']:.2f} of 2 "
        f"cores busy — worker {peak['cpu_s'] / peak['wall_s']:.2f} (its two tokio threads share "
        f"it about evenly), smtp-sink {peak['sink_cpu_s'] / peak['wall_s']:.2f}, Redis "
        f"{peak['redis_cpu_s'] / peak['wall_s']:.2f}; the remainder is wake-up latency between "
        "the three processes. More slots add connections, not throughput. Neither Redis nor "
        f"the sink is the limit: Redis uses a fraction of a core and the sink alone takes "
        f"{max(x['msgs_per_s'] for x in res['sink']):,.0f} msgs/s (section 4).")
    if prof:
        b_ = dict((label.split(":")[0], p) for p, label in prof["worker"]["buckets"])
        kern = next((p for p, name in prof["worker"]["by_dso"] if "kernel" in name), 0.0)
        L.append(
            f"- **Inside the worker** {kern:.0f}% of its CPU is the kernel (send/recv syscalls "
            "and the loopback TCP stack): SMTP writes alone are "
            f"{b_.get('SMTP writes', 0):.0f}% (lettre writes and flushes every command "
            "separately and has no PIPELINING, so a mail costs 5 sends and 5 receives), Redis "
            f"I/O {b_.get('Redis I/O', 0):.0f}%. Building the MIME message (`Mailer::compose`) is "
            f"{b_.get('building the MIME message', 0):.0f}%, malloc/free "
            f"{b_.get('malloc/free (self time, all callers)', 0):.0f}%, JSON logs "
            f"{b_.get('JSON logs', 0):.0f}%, payload parsing {b_.get('parsing payloads', 0):.0f}%.")
    rb = m["ruby-c25"]
    L.append(
        f"- **Ruby** is bound by its interpreter: at -c 25 the Sidekiq process uses "
        f"{rb['cpu_s'] / rb['wall_s']:.2f} cores (one core under the GVL) at "
        f"{rb['cpu_s_per_1000']:.1f} ms of CPU per mail — building the message with the mail "
        "gem and a new SMTP connection per mail; at -c 10 its threads also wait on SMTP round "
        "trips (Net::SMTP writes the body in small pieces; without TCP_NODELAY those wait on "
        "the sink's delayed ACKs).\n")
    L.append("## Method notes\n")
    L.append("- Jobs are built by `mail-bench stage` exactly as `push_bulk` builds them, into a "
             "private list; a `RENAME` onto `queue:default` hands the whole batch to the idle "
             "processor at one instant, and the clock starts there. Both processors get the "
             "very same payloads.")
    L.append("- Mail drains end when the sink has counted N new messages; no-op drains when "
             "`queue:default` and mail-worker's in-progress lists are empty (Ruby's last ≤ c "
             "jobs are then in flight for microseconds).")
    L.append("- mail-worker keeps SMTP connections open (its pool); the Ruby peer opens one "
             "per mail, as ActionMailer's `:smtp` delivery does. Both log every job at INFO "
             "(to a file). mail-worker also does more per job than Sidekiq OSS: reliable fetch, "
             "an idempotency check and exact progress counting (Lua), which cost Redis CPU "
             "(see the Redis column).")
    L.append("- A run during which other work on the machine used more than "
             f"{NOISE_CORES} cores is repeated (up to 3 times).\n")

    L.append("## Targets\n")
    thr = m["rust-c25"]["jobs_per_s"] / best_ruby["jobs_per_s"]
    cpu_r = best_ruby["cpu_s_per_1000"] / m["rust-c25"]["cpu_s_per_1000"]
    noop_r = q["rust-c25"]["jobs_per_s"] / max(q["ruby-c10"]["jobs_per_s"],
                                                 q["ruby-c25"]["jobs_per_s"])
    rss = max(m["rust-c10"]["peak_rss_mb"], m["rust-c25"]["peak_rss_mb"])
    L.append("| target | measured | met |\n|---|---:|:---:|")
    L.append(f"| mail drain ≥ 25× Ruby's throughput | {thr:.1f}× | {'yes' if thr >= 25 else 'no'} |")
    L.append(f"| ≤ 1/20 of Ruby's CPU per mail | 1/{cpu_r:.0f} | {'yes' if cpu_r >= 20 else 'no'} |")
    L.append(f"| no-op jobs ≥ 3× Ruby | {noop_r:.1f}× | {'yes' if noop_r >= 3 else 'no'} |")
    L.append(f"| worker peak RSS ≤ 30 MB in the drain | {rss:.1f} MB | {'yes' if rss <= 30 else 'no'} |")
    L.append("")
    path.write_text("\n".join(L) + "\n")


if __name__ == "__main__":
    def _stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    finally:
        PROCS.stop_all()
