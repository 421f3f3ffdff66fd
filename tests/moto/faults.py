"""A fault-injecting proxy in front of the EC2 emulator.

moto never throttles, never fails with a 5xx and never drops a connection
(see ../shared/reference/ec2.md); the watchdog's retries must be shown
against real HTTP answers all the same. This proxy forwards every request to
moto unchanged (Host header included, so the recorder still tells the nodes
apart) except the ones its plan names.

Usage: faults.py HOST PORT UPSTREAM PLAN
  PLAN is JSON: {"Action": ["fault", ...]}; each request for Action takes
  the next fault of its list, and once the list is empty passes through.
  A request with DryRun=true is planned under "DryRun:Action" instead, so
  a permission check does not use up the faults meant for real calls. A
  fault ending in "*" is never used up: it answers every request after it
  (as a missing IAM permission does).
  Faults:
    throttle  503 RequestLimitExceeded (as EC2 throttles), not forwarded
    unavailable  503 Unavailable, not forwarded
    auth      401 AuthFailure, not forwarded
    unauthorized  403 UnauthorizedOperation (an IAM policy without the
              action; EC2 answers a DryRun request so too), not forwarded
    drop      forwarded to moto (the call takes effect), then the
              connection is closed with no answer
    hold      not forwarded (the call never takes effect) and not
              answered: the connection is held until the client gives up,
              or for at most 60 s
    jitter:S  forwarded at once, answered after a random 0-S seconds: answers
              to requests sent close together arrive out of order
    late:S    forwarded after S seconds, then answered: the call lands late,
              after what the other node did meanwhile
    lag:S     forwarded, but answered with what the same request got S
              seconds earlier (or the oldest answer kept, if younger): the
              eventual consistency of EC2's describes, where an answer lags
              a change
Prints "ready" when listening, then "fault ACTION KIND" for each fault it
injects (ACTION as planned, so "DryRun:AssociateAddress" for a DryRun).
POST /__plan with a new PLAN (JSON) replaces the plan (the soak changes
faults between rounds).
"""

import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ERRORS = {
    "throttle": (503, "RequestLimitExceeded", "Request limit exceeded."),
    "unavailable": (503, "Unavailable", "The service is unavailable. Please try again shortly."),
    "auth": (401, "AuthFailure", "AWS was not able to validate the provided access credentials"),
    "unauthorized": (403, "UnauthorizedOperation", "You are not authorized to perform this operation."),
}


def main(host, port, upstream, plan_json):
    plan = {k: list(v) for k, v in json.loads(plan_json).items()}
    for faults in plan.values():
        for f in faults:
            name = f.rstrip("*")
            if name not in ERRORS and name not in ("drop", "hold") and not name.startswith(("lag:", "jitter:", "late:")):
                sys.exit(f"faults.py: unknown fault {f!r}; known: {sorted(ERRORS) + ['drop', 'hold', 'lag:S']}")
    lock = threading.Lock()
    # lag: each request body's answers, oldest first, as (time, answer).
    history = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def forward(self, body):
            req = urllib.request.Request(upstream + self.path, data=body, method=self.command)
            for k, v in self.headers.items():
                if k.lower() not in ("content-length", "connection"):
                    req.add_header(k, v)
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers, e.read()

        def answer(self, status, headers, data):
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def handle_one(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/__plan":
                new = {k: list(v) for k, v in json.loads(body).items()}
                with lock:
                    plan.clear()
                    plan.update(new)
                    history.clear()
                return self.answer(200, {}, b"ok\n")
            params = urllib.parse.parse_qs(body.decode(errors="replace"))
            action = params.get("Action", [""])[0]
            if params.get("DryRun", ["false"])[0].lower() == "true":
                action = "DryRun:" + action
            with lock:
                queue = plan.get(action) or []
                fault = queue[0] if queue and queue[0].endswith("*") else (queue.pop(0) if queue else None)
                fault = fault.rstrip("*") if fault else None
            if fault is None:
                return self.answer(*self.forward(body))
            print(f"fault {action} {fault}", flush=True)
            if fault == "drop":
                self.forward(body)
                self.close_connection = True
                return
            if fault.startswith(("jitter:", "late:")):
                import random
                import time

                wait = float(fault.split(":", 1)[1])
                if fault.startswith("late:"):
                    time.sleep(wait)
                    return self.answer(*self.forward(body))
                answer = self.forward(body)
                time.sleep(random.uniform(0, wait))
                return self.answer(*answer)
            if fault.startswith("lag:"):
                import time

                lag = float(fault.split(":", 1)[1])
                now = time.time()
                answer = self.forward(body)
                with lock:
                    h = history.setdefault(body, [])
                    h.append((now, answer))
                    old = [a for t, a in h if t <= now - lag]
                    chosen = old[-1] if old else h[0][1]
                    # Keep what a later request may still need.
                    while len(h) > 1 and h[1][0] <= now - lag:
                        h.pop(0)
                return self.answer(*chosen)
            if fault == "hold":
                # Wait for the client to hang up (a read returns EOF), bounded.
                self.connection.settimeout(60)
                try:
                    self.connection.recv(1)
                except OSError:
                    pass
                self.close_connection = True
                return
            status, code, message = ERRORS[fault]
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                "<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
            ).encode()
            self.answer(status, {"Content-Type": "text/xml"}, xml)

        do_POST = handle_one
        do_GET = handle_one

    server = ThreadingHTTPServer((host, int(port)), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
