"""Stands in for Alertmanager: receives Prometheus's alert notifications
(POST /api/v2/alerts) and prints each alert as one JSON line, so that a test
can await them as events. Usage: alert_receiver.py HOST PORT"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/api/v2/alerts":
            for alert in json.loads(body):
                print(json.dumps(alert), flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
print("ready", flush=True)
server.serve_forever()
