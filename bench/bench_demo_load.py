"""Load test of the demo: N concurrent users on 127.0.0.1 (loopback only, bounded in requests and time).

Reproduce (tiny random runs, built on the fly; or pass run directories to serve real ones):

    cd /work/main && PYTHONPATH=.:tests python3 bench/bench_demo_load.py --users 20 --requests 5
    PYTHONPATH=. python3 bench/bench_demo_load.py /work/runs --users 20 --requests 3

What it does: builds the demo app with adapt's own code (``adapt.serve.build_app``: one shared
base, queue of ``MAX_QUEUE``), serves it on 127.0.0.1 on a free port, and starts ``--users``
threads, each a ``gradio_client.Client`` that sends ``--requests`` requests one after the other,
alternating the healthcare question view (streamed answer) and the legal clause view. Each
request is timed end to end. A request the queue turns away ("queue full": the demo's documented
refusal once more than MAX_QUEUE wait) is counted apart from other errors; every other failure is
an error. The whole run stops after ``--deadline`` seconds whatever is left.

Writes bench/out/bench_demo_load.json and bench/out/bench_demo_load.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
HOST = "127.0.0.1"  # never anything else: this is a load test of this machine only
QUESTION = "Does aspirin reduce the risk of stroke in patients with atrial fibrillation?"
CLAUSE = "Licensee shall not assign this Agreement without the prior written consent of Licensor."


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"n": len(values), "p50": round(statistics.median(values), 3), "p90": pct(0.9), "p95": pct(0.95),
            "p99": pct(0.99), "max": round(ordered[-1], 3), "mean": round(statistics.fmean(values), 3)}  # fmt: skip


def tiny_runs(folder: Path) -> list[Path]:
    from demo_fixtures import build_runs
    from tiny import build_tiny_llama

    model = build_tiny_llama(folder / "tiny-llama")
    return [build_runs(folder / "runs", model, ner=False)]


def user(url: str, n: int, deadline: float, adapters: dict[str, str], results: list, lock: threading.Lock) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    for i in range(n):
        if time.monotonic() > deadline:
            break
        api, args = (
            ("/healthcare_ask", (adapters["healthcare"], QUESTION, ""))
            if i % 2 == 0
            else ("/legal_classify", (adapters["legal"], CLAUSE, "governing_law"))
        )
        start = time.perf_counter()
        try:
            client.predict(*args, api_name=api)
            outcome, detail = "ok", ""
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, by kind
            text = str(exc)
            outcome = "queue_full" if "queue" in text.lower() and "full" in text.lower() else "error"
            detail = f"{type(exc).__name__}: {text[:200]}"
        with lock:
            results.append({"api": api, "outcome": outcome, "seconds": time.perf_counter() - start, "detail": detail})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run directories (default: tiny random runs built here)")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5, help="requests per user")
    parser.add_argument("--deadline", type=float, default=480, help="seconds for the whole test")
    parser.add_argument("--out", default=str(REPO / "bench" / "out"))
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 64 or not 1 <= args.requests <= 50:
        parser.error("--users 1..64 and --requests 1..50: a bounded test")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import torch

    from adapt.serve import MAX_QUEUE, build_app, start

    with tempfile.TemporaryDirectory() as scratch:
        runs = [Path(p) for p in args.runs] or tiny_runs(Path(scratch))
        demo = build_app(runs)
        adapters = {r.recipe.domain: r.name for r in demo.adapt_service.runs.all}
        port = free_port()
        start(demo, host=HOST, port=port, block=False)
        url = f"http://{HOST}:{port}/"
        results: list[dict] = []
        lock = threading.Lock()
        load_before = os.getloadavg()
        began = time.perf_counter()
        deadline = time.monotonic() + args.deadline
        threads = [threading.Thread(target=user, args=(url, args.requests, deadline, adapters, results, lock)) for _ in range(args.users)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(1.0, deadline - time.monotonic() + 30))
        wall = time.perf_counter() - began
        demo.close()

    by = {kind: [r for r in results if r["outcome"] == kind] for kind in ("ok", "queue_full", "error")}
    report = {
        "users": args.users, "requests_per_user": args.requests, "sent": len(results), "wall_s": round(wall, 1),
        "max_queue": MAX_QUEUE, "runs": "tiny random (tests/demo_fixtures)" if not args.runs else [str(p) for p in runs],
        "ok": len(by["ok"]), "queue_full": len(by["queue_full"]), "errors": len(by["error"]),
        "latency_ok_s": percentiles([r["seconds"] for r in by["ok"]]),
        "latency_ok_by_api_s": {api: percentiles([r["seconds"] for r in by["ok"] if r["api"] == api]) for api in sorted({r["api"] for r in results})},
        "error_examples": sorted({r["detail"] for r in by["error"]})[:5],
        "refusal_examples": sorted({r["detail"] for r in by["queue_full"]})[:2],
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }  # fmt: skip
    lat = report["latency_ok_s"]
    table = "\n".join([
        f"Demo load test: {args.users} concurrent users x {args.requests} requests on {HOST} "
        f"({report['cpu_capability']}, {report['cpu_count']} CPUs, load {load_before[0]:.1f}); queue max {MAX_QUEUE}",
        "",
        "| sent | ok | queue full (documented refusal) | errors | p50 s | p90 s | p95 s | p99 s | max s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {len(results)} | {report['ok']} | {report['queue_full']} | {report['errors']} | {lat.get('p50', '')} | "
        f"{lat.get('p90', '')} | {lat.get('p95', '')} | {lat.get('p99', '')} | {lat.get('max', '')} | {report['wall_s']} |",
    ])  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_demo_load.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench_demo_load.md").write_text(table + "\n")
    print(table)
    if report["error_examples"]:
        print("errors:", *report["error_examples"], sep="\n  ")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
