"""Huawei OBS access on the official SDK (``esdk-obs-python``): URIs, listing, transfers, retries.

Credentials come only from the environment (``OBS_ACCESS_KEY_ID``, ``OBS_SECRET_ACCESS_KEY``,
optional ``OBS_SECURITY_TOKEN``); they are handed to the SDK client and never kept, printed or logged.
Without them the client is anonymous (the SDK's documented default: an empty AK/SK "indicates that anonymous
users are allowed", support.huaweicloud.com sdk-python-devg-obs/obs_22_0601): public-read buckets can be read,
writes and private buckets are refused in one line.
"""

import logging
import os
import re
import socket
import time
from typing import Callable, Iterator, NamedTuple, Optional, Tuple

from pwcflow.config.groups import ENV_KEY, ENV_SECRET, ENV_TOKEN  # noqa: F401 (the credential variables)
from pwcflow.errors import UserError
from pwcflow.files.atomic import atomic_file

log = logging.getLogger(__name__)

ENV_ENDPOINT = "OBS_ENDPOINT"
PARTIAL_SUFFIX = ".partial"  # an interrupted download's bytes, continued by the next try (Range GET)
_CHUNK = 1 << 20
SCHEMES = ("obs", "s3")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TRANSIENT_STATUS = (408, 429)


class ObjectInfo(NamedTuple):
    """One stored object: key, size in bytes and ETag (quotes stripped)."""

    key: str
    size: int
    etag: str


class _Done(NamedTuple):
    """A finished ranged download (HTTP 416: the partial file already holds every byte)."""

    status: int = 200


class TransientError(Exception):
    """A failure worth retrying (connection refused/reset, timeout, 5xx, 408, 429)."""


def is_remote(uri: str) -> bool:
    """True for ``obs://`` and ``s3://`` URIs (also malformed ones such as ``obs:/x``, so they get parsed)."""
    return isinstance(uri, str) and uri.split(":", 1)[0].lower() in SCHEMES and ":" in uri


def parse_obs_uri(uri: str) -> Tuple[str, str]:
    """Split ``obs://bucket/key`` (or ``s3://``) into ``(bucket, key)``; the key may be empty."""
    match = re.match(r"^(obs|s3)://([^/]+)(?:/(.*))?$", str(uri), re.IGNORECASE)
    bucket = match.group(2) if match else ""
    if not match or not _BUCKET_RE.match(bucket) or ".." in bucket or "//" in (match.group(3) or ""):
        raise UserError("malformed OBS URI %r: expected obs://bucket/path with a 3-63 character lowercase bucket name"
                        % str(uri))
    return bucket, match.group(3) or ""


def join_key(*parts: str) -> str:
    """Join key parts with single slashes (empty parts are skipped)."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def require_credentials() -> Tuple[str, str]:
    """The access key and secret from the environment; one-line error naming the variables if unset."""
    access_key, secret_key = os.environ.get(ENV_KEY), os.environ.get(ENV_SECRET)
    if not access_key or not secret_key:
        raise UserError("OBS credentials missing: set the environment variables %s and %s (and %s for "
                        "temporary credentials)" % (ENV_KEY, ENV_SECRET, ENV_TOKEN))
    return access_key, secret_key


def credentials() -> Tuple[Optional[str], Optional[str]]:
    """The access key and secret from the environment, or ``(None, None)`` (anonymous) when neither is set."""
    access_key, secret_key = os.environ.get(ENV_KEY), os.environ.get(ENV_SECRET)
    if bool(access_key) != bool(secret_key):
        raise UserError("OBS credentials incomplete: set both %s and %s, or neither for anonymous reads of "
                        "public-read buckets" % (ENV_KEY, ENV_SECRET))
    return (access_key, secret_key) if access_key else (None, None)


def _append_rest(client, bucket: str, key: str, part: str):
    """One GET of the bytes ``part`` lacks (all of them when it is empty), appended as they arrive."""
    from obs import GetObjectHeader

    have = os.path.getsize(part) if os.path.exists(part) else 0
    resp = client.getObject(bucket, key, headers=GetObjectHeader(range="%d-" % have) if have else None)
    if getattr(resp, "status", 500) == 416:  # nothing left to send: the partial file is the whole object
        return _Done()
    if getattr(resp, "status", 500) >= 300:
        return resp
    stream = resp.body.response
    try:
        with open(part, "ab" if have and resp.status == 206 else "wb") as fh:  # 200: the server sent it all
            while True:
                try:
                    chunk = stream.read(_CHUNK)
                except Exception as exc:  # the SDK raises a plain Exception on a short body
                    raise TransientError("%s: %s" % (type(exc).__name__, exc))
                if not chunk:
                    break
                fh.write(chunk)
    finally:
        stream.close()
    return resp


class ObsStore:
    """A thin, retrying wrapper around ``obs.ObsClient`` for the few operations pwcflow needs."""

    def __init__(self, endpoint: str, region: Optional[str] = None, path_style: bool = False,
                 signature: str = "obs", retries: int = 5, backoff_s: float = 1.0, workers: int = 8,
                 cache_dir: Optional[str] = None) -> None:
        access_key, secret_key = credentials()
        from obs import ObsClient  # the SDK is only needed once something is remote

        self.endpoint, self.anonymous = endpoint, access_key is None
        keys = {} if self.anonymous else dict(access_key_id=access_key, secret_access_key=secret_key,
                                                security_token=os.environ.get(ENV_TOKEN) or None)
        self.retries, self.backoff_s, self.workers = int(retries), float(backoff_s), max(1, int(workers))
        self.cache_dir = cache_dir
        # max_retry_count=0: every retry (and its backoff) happens in _call, where it is visible and bounded.
        self._client = ObsClient(server=endpoint, signature=signature, region=region or "region",
                                 path_style=bool(path_style), max_retry_count=0, **keys)

    def __repr__(self) -> str:
        return "ObsStore(endpoint=%r)" % self.endpoint

    def close(self) -> None:
        """Release the SDK's connections."""
        self._client.close()

    def __enter__(self) -> "ObsStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- retry core ---------------------------------------------------------------------------------
    def _call(self, what: str, bucket: str, fn: Callable[[], object], missing_ok: bool = False):
        """Run one SDK call with retries and exponential backoff; map errors to one-line UserErrors.

        Returns the SDK response, or None for a 404 on an object when ``missing_ok``.
        """
        for attempt in range(self.retries + 1):
            try:
                try:
                    resp = fn()
                except (OSError, socket.timeout, ConnectionError) as exc:
                    raise TransientError("%s: %s" % (type(exc).__name__, exc))
                except Exception as exc:  # the SDK raises plain Exceptions for http.client failures too
                    if type(exc).__module__.startswith(("http", "urllib3", "ssl")):
                        raise TransientError("%s: %s" % (type(exc).__name__, exc))
                    raise
                return self._check(resp, what, bucket, missing_ok)
            except TransientError as exc:
                if attempt >= self.retries:
                    raise UserError("OBS %s failed after %d tries at %s: %s"
                                    % (what, attempt + 1, self.endpoint, str(exc).splitlines()[0]))
                delay = self.backoff_s * (2 ** attempt)
                log.warning("OBS %s failed (%s), retry %d/%d in %.1f s", what, str(exc).splitlines()[0],
                            attempt + 1, self.retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check(self, resp, what: str, bucket: str, missing_ok: bool):
        """Return ``resp`` if it succeeded; raise TransientError / UserError otherwise."""
        status = getattr(resp, "status", None)
        if status is not None and status < 300:
            return resp
        code = getattr(resp, "errorCode", None) or ""
        if status is None or status >= 500 or status in _TRANSIENT_STATUS:
            raise TransientError("HTTP %s %s" % (status, code))
        if status == 404 and code != "NoSuchBucket" and missing_ok:
            return None
        if status == 404 and (code == "NoSuchBucket" or what.startswith("bucket")):
            raise UserError("OBS bucket %r does not exist at %s" % (bucket, self.endpoint))
        if status in (401, 403) and self.anonymous:
            raise UserError("OBS refused an anonymous read of bucket %r (%s): it is not public-read; set %s and %s"
                            % (bucket, code or status, ENV_KEY, ENV_SECRET))
        if status in (401, 403):
            raise UserError("OBS denied access to bucket %r (%s): check %s / %s and the bucket's permissions"
                            % (bucket, code or status, ENV_KEY, ENV_SECRET))
        raise UserError("OBS %s failed: HTTP %s %s %s" % (what, status, code, getattr(resp, "errorMessage", "") or ""))

    # -- operations -----------------------------------------------------------------------------------
    def check_bucket(self, bucket: str) -> None:
        """Fail with one line if ``bucket`` does not exist or is not accessible."""
        self._call("bucket check of %r" % bucket, bucket, lambda: self._client.headBucket(bucket))

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, page by page.

        Each page goes on after the last key seen: without a delimiter S3 need not send ``NextMarker``
        (OBS-compatible servers send None or an opaque token), so it is not used.
        """
        marker = None
        while True:
            resp = self._call("listing of obs://%s/%s" % (bucket, prefix), bucket,
                              lambda: self._client.listObjects(bucket, prefix=prefix or None, marker=marker,
                                                               max_keys=1000))
            contents = resp.body.contents or []
            for obj in contents:
                yield ObjectInfo(obj.key, int(obj.size or 0), (obj.etag or "").strip('"'))
            if not resp.body.is_truncated or not contents:
                return
            marker = contents[-1].key

    def head(self, bucket: str, key: str) -> Optional[ObjectInfo]:
        """Size and ETag of one object, or None if it does not exist."""
        resp = self._call("lookup of obs://%s/%s" % (bucket, key), bucket,
                          lambda: self._client.getObjectMetadata(bucket, key), missing_ok=True)
        if resp is None:
            return None
        return ObjectInfo(key, int(resp.body.contentLength or 0), (resp.body.etag or "").strip('"'))

    def download(self, bucket: str, key: str, path: str, size: Optional[int] = None) -> None:
        """Fetch one object to ``path``, which is either absent or complete (renamed into place at the end).

        Resumable: the bytes arrive in ``path + PARTIAL_SUFFIX``; a retry, or the next run after an
        interruption, continues from its size with a Range GET. ``size`` (known from a listing) checks the end.
        """
        part = path + PARTIAL_SUFFIX
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if size is not None and os.path.exists(part) and os.path.getsize(part) > size:
            os.remove(part)  # longer than the object: not a prefix of it
        if size is None or not os.path.exists(part) or os.path.getsize(part) < size:
            self._call("download of obs://%s/%s" % (bucket, key), bucket,
                       lambda: _append_rest(self._client, bucket, key, part))
        got = os.path.getsize(part)
        if size is not None and got != size:
            raise UserError("download of obs://%s/%s stopped at %d of %d bytes: run again to continue"
                            % (bucket, key, got, size))
        with atomic_file(path) as tmp:
            os.replace(part, tmp)

    def read_text(self, bucket: str, key: str) -> Optional[str]:
        """A small object's content as text, or None if it does not exist."""
        resp = self._call("download of obs://%s/%s" % (bucket, key), bucket,
                          lambda: self._client.getObject(bucket, key, loadStreamInMemory=True), missing_ok=True)
        return None if resp is None else (resp.body.buffer or b"").decode("utf-8", "replace")

    def upload(self, path: str, bucket: str, key: str) -> None:
        """Put one local file at ``obs://bucket/key`` (a retried upload simply overwrites the same key)."""
        if self.anonymous:
            require_credentials()
        self._call("upload to obs://%s/%s" % (bucket, key), bucket,
                   lambda: self._client.putFile(bucket, key, path))
