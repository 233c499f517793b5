#!/usr/bin/env python3
"""A demo region receiver for `make run`: prints each forwarded webhook and answers 200."""
import hashlib, hmac, http.server, sys

name, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        ok = "valid" if self.headers.get("X-Outbox-Signature") == sig else "INVALID"
        print(f"[region {name}] {self.command} {self.path} outbox-id={self.headers.get('X-Outbox-Id')} "
              f"attempt={self.headers.get('X-Outbox-Attempt')} signature={ok} body={body[:120]!r}", flush=True)
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    do_PUT = do_POST

http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
