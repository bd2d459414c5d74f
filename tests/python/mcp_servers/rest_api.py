"""A small REST API for the OpenAPI -> MCP tests: the pets API of
crates/tollgate/tests/data/openapi/pets.yaml (also served at
/openapi.yaml). Usage: rest_api.py PORTFILE LOG; every request is logged
as a JSON line (method, path with query, Authorization, body)."""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

DOC = Path(__file__).resolve().parents[3] / "crates/tollgate/tests/data/openapi/pets.yaml"
PORTFILE, LOG = Path(sys.argv[1]), Path(sys.argv[2])


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        path = urlsplit(self.path).path
        if path == "/openapi.yaml":
            return self.answer(200, DOC.read_text(), "application/yaml")
        auth = self.headers.get("Authorization", "")
        with LOG.open("a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path, "authorization": auth, "body": body}) + "\n")
        if self.command == "GET" and path == "/v1/pets/0":
            return self.answer(404, {"error": "no such pet"})
        if self.command == "GET" and path.startswith("/v1/pets/"):
            return self.answer(200, {"id": path[len("/v1/pets/"):], "name": "rex", "auth": auth})
        if self.command == "GET" and path == "/v1/pets":
            return self.answer(200, [{"name": "rex"}, {"name": "tom"}])
        if self.command == "POST" and path == "/v1/pets":
            return self.answer(201, json.loads(body))
        if self.command == "DELETE" and path.startswith("/v1/pets/"):
            return self.answer(204, "", "text/plain")
        return self.answer(405, {})

    do_GET = do_POST = do_DELETE = handle_any


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
tmp = PORTFILE.with_suffix(".tmp")
tmp.write_text(str(server.server_address[1]))
tmp.rename(PORTFILE)
server.serve_forever()
