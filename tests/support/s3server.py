"""A real S3-compatible server on 127.0.0.1 for the storage tests, run as a subprocess.

Backends: npm's ``s3rver`` (file-backed, so it keeps its objects across a restart; installed by
``make tools`` into ``.tools/s3rver``) and moto's standalone ``moto_server`` (PyPI ``moto[server]``,
in-memory). ``PWCFLOW_TEST_S3=s3rver|moto`` forces one; the default prefers s3rver.

What is verified. The tests use the OBS settings the package ships (``conf/storage/obs.yaml``:
``signature: obs``, ``path_style: false``). Against an IP endpoint such as 127.0.0.1 esdk-obs-python itself
switches to path-style addressing and, because path style turns its signature negotiation off, signs
``signature='obs'`` requests as S3 V2 (``obs/client.py``, ``ObsClient.__init__``: ``_check_path_style`` and
``if self.path_style ...: self.signature = 'v2'``), as it would against any IP endpoint. s3rver verifies V2
signatures (HMAC-SHA1 with the account's secret) and refuses a wrong secret with ``SignatureDoesNotMatch``;
each server here gets its own random key pair (``s3rver_keys.js``), so a client with any other secret fails.
Not verified: OBS's own ``OBS ak:sig`` scheme, which only a real OBS endpoint (host name, negotiated) uses,
and V4 (s3rver accepts any V4 signature; moto_server checks V4 only with IAM users, and no V2), so with
moto no signature is checked (``verifies_signatures`` is False and the wrong-secret test skips).
"""

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator, List, Optional

ROOT = Path(__file__).resolve().parents[2]
S3RVER_BIN = ROOT / ".tools" / "s3rver" / "node_modules" / ".bin" / "s3rver"
KEYS_JS = Path(__file__).resolve().parent / "s3rver_keys.js"
REGION = "us-east-1"


def find_s3rver() -> Optional[List[str]]:
    """The s3rver command line (needs node), or None."""
    node = shutil.which("node")
    for cand in (os.environ.get("PWCFLOW_S3RVER"), str(S3RVER_BIN), shutil.which("s3rver")):
        if node and cand and os.path.isfile(cand):
            return [node, str(KEYS_JS), os.path.realpath(cand)]
    return None


def find_moto() -> Optional[List[str]]:
    """The moto_server command line of this interpreter's environment, or None."""
    exe = Path(sys.executable).parent / "moto_server"
    if exe.exists():
        return [str(exe)]
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "moto.server"]


def choose_backend() -> Optional[str]:
    """``s3rver`` or ``moto`` (``PWCFLOW_TEST_S3`` decides; default: s3rver when installed), or None."""
    want = os.environ.get("PWCFLOW_TEST_S3", "auto")
    if want in ("auto", "s3rver") and find_s3rver():
        return "s3rver"
    if want in ("auto", "moto") and find_moto():
        return "moto"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class S3Server:
    """Start, stop and restart one server process; ``url`` is its endpoint."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend, self.workdir = backend, Path(workdir)
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        # a key pair of this server's own (s3rver: registered by s3rver_keys.js; moto accepts any key); the
        # secret is unique so tests can search logs and files for it afterwards
        self.access_key = "pwcflow-test-key"
        self.secret = "pwcflow-SECRET-%s" % uuid.uuid4().hex

    @property
    def verifies_signatures(self) -> bool:
        """True if a request signed with another secret is refused (s3rver, V2; see the module docstring)."""
        return self.backend == "s3rver"

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    @property
    def persistent(self) -> bool:
        """True if objects survive a restart (s3rver stores them on disk; moto in memory)."""
        return self.backend == "s3rver"

    def command(self) -> List[str]:
        if self.backend == "s3rver":
            return find_s3rver() + ["-d", str(self.data_dir), "-a", "127.0.0.1", "-p", str(self.port)]
        return find_moto() + ["-H", "127.0.0.1", "-p", str(self.port)]

    def start(self, timeout: float = 30.0) -> "S3Server":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(str(self.log_path), "ab")
        env = dict(os.environ, S3RVER_TEST_ACCESS_KEY=self.access_key, S3RVER_TEST_SECRET_KEY=self.secret)
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=str(self.workdir),
                                     env=env)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s: %s" % (self.backend, self.proc.returncode, self.log()[-2000:]))
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).close()
                return self
            except urllib.error.HTTPError:
                return self  # it answers (e.g. 403 to an unsigned request): ready
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("%s did not start on %s within %.0f s" % (self.backend, self.url, timeout))

    def stop(self, hard: bool = False) -> None:
        """Terminate (or, ``hard``, kill) the process we started."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill() if hard else self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stored_keys(self, bucket: str) -> List[str]:
        """Keys the server logged as stored in ``bucket``, in the order it stored them (retries included)."""
        pattern = (r'Stored object "(.+?)" in bucket "%s"' if self.backend == "s3rver"
                   else r'"PUT /%s/(\S+) HTTP/1\.1" 200') % re.escape(bucket)
        return re.findall(pattern, self.log())

    def client(self, secret: Optional[str] = None):
        """A raw SDK client for seeding and inspecting buckets (the code under test builds its own), with the
        SDK's default signature and addressing, as ``conf/storage/obs.yaml`` ships them."""
        from obs import ObsClient

        return ObsClient(access_key_id=self.access_key, secret_access_key=secret or self.secret, server=self.url)

    def make_bucket(self, name: str) -> None:
        client = self.client()
        try:
            resp = client.createBucket(name)
            assert resp.status < 300, (resp.status, resp.errorCode)
        finally:
            client.close()


@contextlib.contextmanager
def running(backend: str, workdir: Path, bucket: str = "runs") -> Iterator[S3Server]:
    """A started server with ``bucket`` made, stopped on exit (the module fixtures' body)."""
    srv = S3Server(backend, workdir).start()
    try:
        srv.make_bucket(bucket)
        yield srv
    finally:
        srv.stop()
