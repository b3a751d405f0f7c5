"""Images/second fetched from a local image host that answers each request after 50 ms.

    .venv/bin/python bench/fetch_throughput.py [--images 600] [--latency 0.05]

Two numbers from one run against the same server (127.0.0.1 only):

* fetch only: ``Fetcher.fetch_many`` (threads, per-host limit, SSRF guard, size caps)
* ingest: ``clipatlas ingest urls.txt`` end to end with the deterministic ``fake:64`` embedder
  (download + decode workers + thumbnails + originals + store), so the model is not the limit

Target (issue 3): >= 100 images/s on 2 cores. Prints a Markdown block for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clipatlas import Atlas
from clipatlas.fetch import Fetcher
from clipatlas.settings import Settings
from tests.corpus import write_good_jpegs


class _Host(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, images: list[bytes], latency: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.images, self.latency = images, latency


class _Handler(BaseHTTPRequestHandler):
    server: _Host
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(self.server.latency)
        index = int(self.path.rsplit("/", 1)[-1].split(".")[0])
        body = self.server.images[index]
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clipatlas-fetch-bench-") as tmp:
        work = Path(tmp)
        files = write_good_jpegs(work / "src", args.images, size=(512, 768))
        images = [f.read_bytes() for f in files]
        host = _Host(images, args.latency)
        threading.Thread(target=host.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{host.server_address[1]}"
        urls = [f"{base}/img/{i}.jpg" for i in range(args.images)]
        (work / "urls.txt").write_text("\n".join(urls) + "\n")
        settings = Settings(
            home=work / "home", model="fake:64", allow_hosts=["127.0.0.1"],
            fetch_concurrency=args.concurrency, fetch_per_host=args.concurrency,
        )  # fmt: skip
        with Fetcher(settings.fetch_policy()) as fetcher:
            start = time.perf_counter()
            ok = sum(
                not isinstance(r, Exception)
                for _, r in fetcher.fetch_many(urls, concurrency=args.concurrency)
            )
            fetch_rate = ok / (time.perf_counter() - start)
        with Atlas.open("bench", settings=settings) as atlas:
            atlas.embedder()
            start = time.perf_counter()
            report = atlas.ingest(atlas.source("urls", path=work / "urls.txt"))
            ingest_rate = report.stored / (time.perf_counter() - start)
        host.shutdown()
    print(f"### fetch_throughput ({time.strftime('%Y-%m-%d')})\n")
    print(f"`.venv/bin/python bench/fetch_throughput.py {' '.join(sys.argv[1:])}`".strip() + "  ")
    print(
        f"{os.cpu_count()} cores, {args.images} JPEGs 512x768 "
        f"(~{sum(map(len, images)) // len(images) // 1024} KB), "
        f"{args.latency * 1000:.0f} ms latency per request, concurrency {args.concurrency}\n"
    )
    print("| stage | images/s |")
    print("|---|---:|")
    print(f"| fetch only (Fetcher.fetch_many, {ok} ok) | {fetch_rate:.1f} |")
    print(f"| ingest urls.txt, fake:64 embedder ({report.stored} stored) | {ingest_rate:.1f} |")
    print(f"\ntarget >= 100 images/s: {'met' if ingest_rate >= 100 else 'NOT met'} (ingest)")


if __name__ == "__main__":
    main()
