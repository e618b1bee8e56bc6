"""The web app under load: many short jobs at once against a local ``stylist web`` server.

    python benchmarks/web_load.py                      # 20 jobs, 64 px, 10 iterations; about 2 minutes on 2 cores
    python benchmarks/web_load.py --jobs 5 --out /tmp/w.json    # smoke run

The server runs as a subprocess (``python -m stylist web``) on a free loopback port, with its
default limits (one run at a time, 20 waiting). ``--jobs`` visitors, each with its own session
(one ``gradio_client.Client`` each, so the one-run-per-session rule does not serialise them on
the client side), submit one optimisation each at the same moment, through the same API the page
uses. For every job the script records its latency (submission to result), the best place in
line the server told it, and how it ended: finished, or refused with the server's message (the
queue is full). While the jobs run it samples the server's resident memory; at the end it reads
the kernel's peak (VmHWM) and checks the server still answers.

The reference is the same job run directly through :func:`stylist.stylize` in this process
(median of 3 after one warm-up), so the ratio ``web makespan / (jobs x direct time)`` says what
the queue and the web layer cost over running the jobs one after another by hand. Everything is
bounded: ``--timeout`` seconds for the whole load, after which unfinished jobs count as timed out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from stylist import TransferConfig, stylize  # noqa: E402

CONTENT = ROOT / "examples" / "content" / "kodak_lighthouse_coast.jpg"
STYLE = ROOT / "examples" / "style" / "starry_night.jpg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "stylist", "web", "--port", str(port), *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_up(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not answer within {seconds} s")


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def one_job(url: str, size: int, iterations: int, start: threading.Event, deadline: float) -> dict:
    """One visitor: a session of its own, one submission, its place in line, its result."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    start.wait()
    t0 = time.perf_counter()
    record: dict = {"outcome": "timed out", "best_rank": None}
    try:
        job = client.submit(
            handle_file(str(CONTENT)),
            handle_file(str(STYLE)),
            "Optimisation (Gatys et al.)",
            None,
            size,
            1.5,
            0.0,
            iterations,
            "none",
            1.0,
            api_name="/run",
        )
        while not job.done() and time.monotonic() < deadline:
            rank = job.status().rank
            if rank is not None:  # the place in line the server reported (0: next)
                record["best_rank"] = rank if record["best_rank"] is None else max(record["best_rank"], rank)
            time.sleep(0.2)
        if job.done():
            outputs = job.outputs()
            job.result(timeout=5)
            last = outputs[-1] if outputs else None
            record["outcome"] = (
                "finished" if last and str(last[1]).startswith("**Done") else f"ended: {last and last[1]}"
            )
    except Exception as err:  # noqa: BLE001 (a refused job is an outcome to report)
        record["outcome"] = f"refused: {str(err).splitlines()[0][:120]}"
    record["latency_s"] = round(time.perf_counter() - t0, 3)
    client.close() if hasattr(client, "close") else None
    return record


def direct_time(size: int, iterations: int) -> float:
    cfg = TransferConfig(size=size, iterations=iterations, style_weight=10**1.5)
    stylize(CONTENT, STYLE, cfg)  # warm-up: weights read, caches filled
    times = []
    for _ in range(3):
        t = time.perf_counter()
        stylize(CONTENT, STYLE, cfg)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(args: argparse.Namespace) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_server(port, args.server_args)
    try:
        wait_up(url, proc)
        idle_rss = rss_kb(proc.pid)
        start, results = threading.Event(), [None] * args.jobs
        deadline = time.monotonic() + args.timeout

        def work(i: int) -> None:
            results[i] = one_job(url, args.size, args.iterations, start, deadline)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(args.jobs)]
        for t in threads:
            t.start()
        time.sleep(3)  # every client connected before the jobs go in together
        t0 = time.perf_counter()
        start.set()
        peak_sampled = 0
        while any(t.is_alive() for t in threads):
            peak_sampled = max(peak_sampled, rss_kb(proc.pid))
            time.sleep(0.2)
        makespan = time.perf_counter() - t0
        with urllib.request.urlopen(url, timeout=10) as r:
            alive = r.status == 200 and proc.poll() is None
        peak = rss_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    finished = [r for r in results if r["outcome"] == "finished"]
    lat = [r["latency_s"] for r in finished]
    return {
        "jobs": args.jobs,
        "finished": len(finished),
        "refused": sum(r["outcome"].startswith("refused") for r in results),
        "timed_out": sum(r["outcome"] == "timed out" for r in results),
        "told_their_place": sum(r["best_rank"] is not None for r in results),
        "max_place_in_line": max((r["best_rank"] for r in results if r["best_rank"] is not None), default=None),
        "latency_s": {"p50": percentile(lat, 0.5), "p90": percentile(lat, 0.9), "max": max(lat)} if lat else None,
        "makespan_s": round(makespan, 2),
        "server_alive_after": alive,
        "server_rss_mb": {
            "idle": round(idle_rss / 1024),
            "peak_sampled": round(peak_sampled / 1024),
            "peak_vmhwm": round(peak / 1024),
        },
        "outcomes": results,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=600, help="seconds for the whole load")
    ap.add_argument(
        "--server-args", nargs=argparse.REMAINDER, default=[], help="passed to stylist web (e.g. --queue-size 10)"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "web_load.json"))
    args = ap.parse_args()
    # The reference first: the clients' background threads would otherwise share its cores.
    direct = direct_time(args.size, args.iterations)
    report = load(args)
    report["direct_s_per_job"] = round(direct, 3)
    report["ratio_makespan_to_direct"] = round(report["makespan_s"] / (args.jobs * direct), 2)
    report.update(
        {
            "device": platform.processor() or platform.machine(),
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "date": date.today().isoformat(),
            "command": "python benchmarks/web_load.py " + " ".join(sys.argv[1:]),
            "settings": {"size": args.size, "iterations": args.iterations, "server_args": args.server_args},
        }
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: v for k, v in report.items() if k != "outcomes"}
    print(json.dumps(summary, indent=2))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
