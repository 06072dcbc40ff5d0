"""A recorded contract of the Grafana HTTP API subset that provision_grafana.py uses.

No Grafana server is installable from our registries (not on PyPI, npm or Debian), so the provisioning
command is tested against this in-process HTTP server on 127.0.0.1. Routes, status codes and response
bodies follow Grafana's HTTP API reference (legacy `/api` routes, Grafana 9-12: Data source API,
Folder API, Dashboard API, Health API); it enforces what a real server enforces for these calls:
authentication, uid/name uniqueness (409), empty titles (400), the `overwrite`/version rule (412), and
it keeps state so that idempotency is observable (`version` bumps on every accepted save).
"""
from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GRAFANA_VERSION = "11.3.0"


class GrafanaContract:
    def __init__(self, token: str = "test-token", basic: tuple[str, str] = ("admin", "admin")):
        self.token, self.basic = token, basic
        self.datasources: dict[str, dict] = {}
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}   # uid -> {"dashboard": ..., "meta": ...}
        self.writes: list[tuple[str, str]] = []  # (method, path) of every accepted mutation
        self._next_id = 1
        self._lock = threading.Lock()

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    # --- routes: (method, regex) -> handler(match, body) -> (status, json) ---
    def handle(self, method: str, path: str, body):
        with self._lock:
            for m, pattern, fn in self._routes():
                match = re.fullmatch(pattern, path)
                if m == method and match:
                    status, out = fn(match, body)
                    if method != "GET" and status == 200:
                        self.writes.append((method, path))
                    return status, out
        return 404, {"message": "Not found"}

    def _routes(self):
        return [
            ("GET", r"/api/health", lambda m, b: (200, {"commit": "contract", "database": "ok",
                                                         "version": GRAFANA_VERSION})),
            # grafana-client's health.check() reads the build info from the frontend settings
            ("GET", r"/api/frontend/settings", lambda m, b: (200, {"buildInfo": {
                "version": GRAFANA_VERSION, "commit": "contract", "edition": "Open Source", "env": "production"}})),
            ("GET", r"/api/datasources/uid/([^/]+)", self._get_ds),
            ("POST", r"/api/datasources", self._create_ds),
            ("PUT", r"/api/datasources/uid/([^/]+)", self._update_ds),
            ("GET", r"/api/folders/([^/]+)", self._get_folder),
            ("POST", r"/api/folders", self._create_folder),
            ("GET", r"/api/dashboards/uid/([^/]+)", self._get_dashboard),
            ("POST", r"/api/dashboards/db", self._save_dashboard),
        ]

    def _get_ds(self, m, _):
        ds = self.datasources.get(m.group(1))
        return (200, ds) if ds else (404, {"message": "Data source not found"})

    def _create_ds(self, _, body):
        if not isinstance(body, dict) or not body.get("name") or not body.get("type"):
            return 400, {"message": "Required data source name and type"}
        if body.get("uid") in self.datasources or any(d["name"] == body["name"] for d in self.datasources.values()):
            return 409, {"message": "data source with the same name already exists"}
        ds = {"id": self._id(), "orgId": 1, "uid": body.get("uid") or f"ds{self._next_id}", "access": "proxy",
              "isDefault": False, "jsonData": {}, "readOnly": False, "version": 1, "basicAuth": False, **body}
        self.datasources[ds["uid"]] = ds
        return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource added", "name": ds["name"]}

    def _update_ds(self, m, body):
        old = self.datasources.get(m.group(1))
        if not old:
            return 404, {"message": "Data source not found"}
        ds = {**old, **body, "id": old["id"], "uid": old["uid"], "version": old["version"] + 1}
        self.datasources[ds["uid"]] = ds
        return 200, {"datasource": ds, "id": ds["id"], "message": "Datasource updated", "name": ds["name"]}

    def _get_folder(self, m, _):
        f = self.folders.get(m.group(1))
        return (200, f) if f else (404, {"message": "folder not found", "status": "not-found"})

    def _create_folder(self, _, body):
        if not isinstance(body, dict) or not body.get("title"):
            return 400, {"message": "folder title cannot be empty"}
        if body.get("uid") in self.folders:
            return 409, {"message": "a folder with the same uid already exists"}
        uid = body.get("uid") or f"f{self._next_id}"
        f = {"id": self._id(), "uid": uid, "title": body["title"], "url": f"/dashboards/f/{uid}/",
             "version": 1, "hasAcl": False, "canSave": True}
        self.folders[uid] = f
        return 200, f

    def _get_dashboard(self, m, _):
        d = self.dashboards.get(m.group(1))
        return (200, d) if d else (404, {"message": "Dashboard not found"})

    def _save_dashboard(self, _, body):
        dash = (body or {}).get("dashboard")
        if not isinstance(dash, dict) or not str(dash.get("title", "")).strip():
            return 400, {"message": "Dashboard title cannot be empty", "status": "empty-name"}
        folder = body.get("folderUid")
        if folder and folder not in self.folders:
            return 400, {"message": "folder not found", "status": "folder-not-found"}
        uid = dash.get("uid") or f"d{self._next_id}"
        old = self.dashboards.get(uid)
        if old and not body.get("overwrite") and dash.get("version") != old["dashboard"]["version"]:
            return 412, {"message": "The dashboard has been changed by someone else", "status": "version-mismatch"}
        version = old["dashboard"]["version"] + 1 if old else 1
        dash_id = old["dashboard"]["id"] if old else self._id()
        stored = {**dash, "id": dash_id, "uid": uid, "version": version}
        slug = re.sub(r"[^a-z0-9]+", "-", stored["title"].lower()).strip("-")
        self.dashboards[uid] = {"dashboard": stored, "meta": {"folderUid": folder or "", "version": version,
                                                             "slug": slug, "url": f"/d/{uid}/{slug}"}}
        return 200, {"id": dash_id, "uid": uid, "url": f"/d/{uid}/{slug}", "status": "success",
                     "version": version, "slug": slug}

    # --- authentication as Grafana does it: Bearer service-account token or basic auth ---
    def authorized(self, header: str | None) -> bool:
        if not header:
            return False
        if header == f"Bearer {self.token}":
            return True
        if header.startswith("Basic "):
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            return (user, pw) == self.basic
        return False


def serve(contract: GrafanaContract) -> tuple[ThreadingHTTPServer, str]:
    """Start the contract on 127.0.0.1 (free port) in a daemon thread; returns (server, base URL)."""
    class Handler(BaseHTTPRequestHandler):
        def _do(self):
            if not contract.authorized(self.headers.get("Authorization")):
                return self._reply(401, {"message": "Unauthorized"})
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                return self._reply(400, {"message": "bad request data"})
            status, out = contract.handle(self.command, self.path.split("?")[0], body)
            self._reply(status, out)

        def _reply(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _do

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
