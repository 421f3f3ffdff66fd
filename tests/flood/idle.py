"""Opens idle TCP connections and holds them, sending nothing.

    idle.py HOST:PORT:COUNT [HOST:PORT:COUNT ...]

Prints one JSON line once every connect has returned,
{"HOST:PORT": {"open": n, "failed": m}, ...}, then holds the sockets until
its standard input closes, or 300 s at most. Bounded: each connect waits
5 s at most, all of them 60 s.
"""

import json
import resource
import select
import socket
import sys
import time

_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

deadline = time.monotonic() + 60
held = []
report = {}
for target in sys.argv[1:]:
    host, port, count = target.rsplit(":", 2)
    opened = failed = 0
    for _ in range(int(count)):
        if time.monotonic() > deadline:
            failed += 1
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect((host, int(port)))
            held.append(s)
            opened += 1
        except OSError:
            s.close()
            failed += 1
    report[f"{host}:{port}"] = {"open": opened, "failed": failed}
print(json.dumps(report), flush=True)
select.select([sys.stdin], [], [], 300)
