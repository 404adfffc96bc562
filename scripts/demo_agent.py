#!/usr/bin/python3
"""A tiny push agent for `make demo`: it accepts POSTed messages on 127.0.0.1 and appends each body to a
log file. Usage: demo_agent.py PORT LOGFILE"""
import http.server
import sys

PORT, LOG = int(sys.argv[1]), sys.argv[2]


class Inbox(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(LOG, "ab") as f:
            f.write(body.strip() + b"\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


open(LOG, "ab").close()
http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Inbox).serve_forever()
