"""A registry token server for the tests: Docker's token authentication (the flow
Docker Hub, GHCR and Quay use), signing RS256 JWTs that the real docker-registry checks
against a self-signed certificate.

usage: token_server.py <port> <key.pem> <cert.pem> <user> <password>
Anonymous requests get pull-only access; a wrong password gets 401.
"""
import base64
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

PORT, KEY_PATH, CERT_PATH, USER, PASSWORD = sys.argv[1:6]
KEY = open(KEY_PATH).read()
CERT = x509.load_pem_x509_certificate(open(CERT_PATH, "rb").read())
X5C = [base64.b64encode(CERT.public_bytes(Encoding.DER)).decode()]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("token-server: " + (fmt % args) + "\n")

    def do_GET(self):
        query = parse_qs(urlparse(self.path).query)
        auth = self.headers.get("Authorization", "")
        user = ""
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if (name, password) != (USER, PASSWORD):
                self.send_response(401)
                self.end_headers()
                return
            user = name
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            allowed = actions.split(",") if user else [a for a in actions.split(",") if a == "pull"]
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {
            "iss": "bindery-test-issuer",
            "sub": user,
            "aud": query.get("service", [""])[0],
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = jwt.encode(claims, KEY, algorithm="RS256", headers={"x5c": X5C})
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
