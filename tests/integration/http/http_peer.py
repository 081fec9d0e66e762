#!/usr/bin/env python3
"""A scriptable HTTP/1.1 server for the HTTP client's integration tests.

Usage: http_peer.py PORT [--tls CERT KEY]. Prints "ready PORT" once listening. Routes:
  /echo            200, JSON of the method, path, headers, body length and SHA-256
  /status/N        answers status N with a small body
  /bytes/N         200 with N bytes of 'x'
  /slow/MS         waits MS milliseconds, then 200
  /close           200 with Connection: close
  /refuse-expect   403 at once to an Expect: 100-continue request, without reading the body
  /silent-expect   ignores Expect: 100-continue (no interim response), reads the body, 200
  /connections     200, the number of TCP connections accepted so far
AWS credential endpoints (for the credentials chain over the real client):
  PUT /latest/api/token, GET /latest/meta-data/iam/security-credentials/[ROLE]   EC2 IMDSv2
  GET /ecs/credentials (Authorization: ecs-auth-token)                          ECS
  POST /sts (Action=AssumeRoleWithWebIdentity, WebIdentityToken=web-identity-token)  STS
"""
import hashlib
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

accepted = 0
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def handle_expect_100(self):
        if self.path == "/refuse-expect":
            self.reply(403, b"refused before the body", close=True)
            return False
        if self.path == "/silent-expect":
            return True  # no interim response: the client must send the body anyway
        return super().handle_expect_100()

    def reply(self, status, body, close=False, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length", "0") or "0")
        return self.rfile.read(n) if n else b""

    def route(self):
        body = self.read_body()
        path = self.path.split("?", 1)[0]
        if path.startswith("/status/"):
            return self.reply(int(path[len("/status/"):]), b"status body")
        if path.startswith("/bytes/"):
            return self.reply(200, b"x" * int(path[len("/bytes/"):]))
        if path.startswith("/slow/"):
            time.sleep(int(path[len("/slow/"):]) / 1000.0)
            return self.reply(200, b"slow")
        if path == "/close":
            return self.reply(200, b"closing", close=True)
        if path.startswith("/latest/") or path in ("/ecs/credentials", "/sts"):
            return self.aws(path, body)
        if path == "/connections":
            with lock:
                return self.reply(200, str(accepted).encode())
        doc = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_length": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        return self.reply(200, json.dumps(doc).encode(), content_type="application/json")

    def aws(self, path, body):
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        if path == "/latest/api/token":
            if self.command != "PUT" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, b"token PUT needs the TTL header")
            return self.reply(200, b"imds-token-123")
        if path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != "imds-token-123":
                return self.reply(401, b"missing or wrong IMDSv2 token")
            role = path[len("/latest/meta-data/iam/security-credentials/"):]
            if role == "":
                return self.reply(200, b"penne-role\n")
            if role != "penne-role":
                return self.reply(404, b"no such role")
            doc = {"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": "ASIAIMDSEXAMPLE",
                   "SecretAccessKey": "imds-secret-key", "Token": "imds-session-token",
                   "Expiration": expiry}
            return self.reply(200, json.dumps(doc).encode(), content_type="text/plain")
        if path == "/ecs/credentials":
            if self.headers.get("Authorization") != "ecs-auth-token":
                return self.reply(403, b'{"message":"bad authorization"}')
            doc = {"AccessKeyId": "ASIAECSEXAMPLE", "SecretAccessKey": "ecs-secret-key",
                   "Token": "ecs-session-token", "Expiration": expiry}
            return self.reply(200, json.dumps(doc).encode(), content_type="application/json")
        if path == "/sts":
            form = urllib.parse.parse_qs(body.decode())
            if form.get("Action") != ["AssumeRoleWithWebIdentity"]:
                return self.reply(400, b"<ErrorResponse><Error><Code>InvalidAction</Code></Error></ErrorResponse>")
            if form.get("WebIdentityToken") != ["web-identity-token"]:
                return self.reply(400, b"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>bad token</Message></Error></ErrorResponse>")
            xml = ("<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                   "<AccessKeyId>ASIASTSEXAMPLE</AccessKeyId><SecretAccessKey>sts-secret-key</SecretAccessKey>"
                   "<SessionToken>sts-session-token</SessionToken><Expiration>%s</Expiration>"
                   "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>" % expiry)
            return self.reply(200, xml.encode(), content_type="text/xml")
        return self.reply(404, b"unknown AWS route")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = route


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        conn, addr = super().get_request()
        global accepted
        with lock:
            accepted += 1
        return conn, addr


def main():
    port = int(sys.argv[1])
    srv = Server(("127.0.0.1", port), Handler)
    if len(sys.argv) >= 5 and sys.argv[2] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("ready", port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
