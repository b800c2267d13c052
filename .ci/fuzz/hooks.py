"""Schemathesis hooks for the contract fuzzer: authenticate as an SLM admin, and on the AutoBot
realm's self-service paths (`/api/autobot-auth/...`, where an SLM token is rightly refused) as
an AutoBot user.

The fuzzer may do anything its accounts may: log its own session out, revoke its sessions,
rename itself, set its own password, even take its own admin role away while another admin
exists. So the hook checks before every case that its token still works (and, for the admin,
still is an admin's); if not it signs in again, and when the credentials no longer work it
makes a new account — the admin with `slm-server create-admin` (the server's environment is
this process's), the AutoBot user through the API — and carries on as that one.
"""
import os
import subprocess
import uuid

import requests
import schemathesis

BASE = os.environ["FUZZ_BASE_URL"]
PASSWORD = os.environ["FUZZ_PASSWORD"]
BINARY = os.environ["FUZZ_BINARY"]


def _login(realm, username):
    answer = requests.post(
        f"{BASE}/api/{realm}-auth/login",
        json={"username": username, "password": PASSWORD},
        timeout=30,
    )
    return answer.json()["access_token"] if answer.status_code == 200 else None


def _me(realm, token):
    answer = requests.get(
        f"{BASE}/api/{realm}-auth/me",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    return answer.json() if answer.status_code == 200 else None


def _new_admin():
    username = f"fuzz-{uuid.uuid4().hex[:12]}"
    subprocess.run(
        [BINARY, "create-admin", "--realm", "slm", "--username", username,
         "--email", f"{username}@fuzz.example.com", "--password-stdin"],
        input=PASSWORD, text=True, check=True, capture_output=True,
    )
    return username


def _new_chat_user(admin_token):
    username = f"chat-{uuid.uuid4().hex[:12]}"
    answer = requests.post(
        f"{BASE}/api/autobot-users",
        headers={"Authorization": f"Bearer {admin_token}"},
        json={"username": username, "email": f"{username}@fuzz.example.com",
              "password": PASSWORD},
        timeout=30,
    )
    answer.raise_for_status()
    return username


class _Admin:
    def __init__(self):
        self.username = "admin"
        self.token = None

    def token_now(self):
        if self.token is not None and (_me("slm", self.token) or {}).get("is_admin"):
            return self.token
        self.token = _login("slm", self.username)
        if self.token is None or not (_me("slm", self.token) or {}).get("is_admin"):
            self.username = _new_admin()
            self.token = _login("slm", self.username)
        return self.token


class _ChatUser:
    def __init__(self, admin):
        self.admin = admin
        self.username = None
        self.token = None

    def token_now(self):
        if self.token is not None and _me("autobot", self.token):
            return self.token
        self.token = self.username and _login("autobot", self.username)
        if not self.token:
            self.username = _new_chat_user(self.admin.token_now())
            self.token = _login("autobot", self.username)
        return self.token


@schemathesis.auth(refresh_interval=None, retry_on=[401])
class FuzzToken:
    """A bearer token of the realm the case's path belongs to, re-issued when it stops working."""

    def __init__(self):
        self.admin = _Admin()
        self.chat_user = _ChatUser(self.admin)

    def get(self, case, ctx):
        if case.path.startswith("/api/autobot-auth/"):
            return self.chat_user.token_now()
        return self.admin.token_now()

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
