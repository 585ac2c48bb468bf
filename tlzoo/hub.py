"""Pushing saved models to, and downloading them from, the Hugging Face Hub.

A push is one ``upload_folder`` commit of a saved folder -- atomic on the Hub:
all files land together or none do. Failures become :class:`tlzoo.errors.HubError`
with a message that says what went wrong and what to do.

Without a network, huggingface_hub retries each request for about half a
minute before it gives up. :func:`offline_if_unreachable` asks once, in a
second or two, whether the Hub can be reached at all; when it cannot, the work
inside runs offline (local folders and the cache only), and
:func:`check_source_available` fails at once, before any data is read, for a
source model the cache does not hold.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from tlzoo.errors import HubError, setting

logger = logging.getLogger(__name__)

#: Weight files of an earlier push that this push deletes unless it re-uploads them: a stale
#: ``model.safetensors`` beside a newly sharded checkpoint would be loaded instead of it.
STALE_PATTERNS = [
    "*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.pt", "*.pth", "*.ckpt", "*.pkl",
    "plots/*", "config.json", "backbone/*",
]  # fmt: skip


def _login_hint() -> str:
    return f"Log in with `hf auth login`, or set the HF_TOKEN environment variable, or pass {setting('token')}"


#: Seconds :func:`hub_reachable` waits for the Hub to accept a connection.
PROBE_TIMEOUT = 3.0
#: The endpoint that could not be reached, while :func:`offline_if_unreachable` works offline.
_UNREACHABLE: contextvars.ContextVar[str | None] = contextvars.ContextVar("tlzoo_unreachable_hub", default=None)
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def hub_reachable(endpoint: str | None = None, *, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the Hub's host accepts a TCP connection within *timeout* seconds (one try, no retries).

    Behind a proxy (``HTTPS_PROXY`` and the like) the Hub's own host cannot be
    asked directly; the answer is then ``True`` and the libraries' own requests decide.
    """
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return True
    url = urlparse(_endpoint(endpoint))
    if not url.hostname:
        return True
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


@contextmanager
def offline_if_unreachable(endpoint: str | None = None, *, needed: bool = True) -> Iterator[bool]:
    """Work offline inside the block when the Hub cannot be reached; yields whether it does.

    With ``HF_HUB_OFFLINE`` already set, or a Hub that answers, nothing
    changes. Otherwise huggingface_hub, transformers and datasets are switched
    to offline mode for the block (and back after it): models and data sets in
    the local cache load at once instead of after half a minute of retries,
    and anything else fails at once with advice (see :func:`check_source_available`).
    ``needed=False`` (the work reads local files only) skips the question.
    """
    from huggingface_hub import constants

    if not needed or constants.HF_HUB_OFFLINE or hub_reachable(endpoint):
        yield False
        return
    import sys

    url = _endpoint(endpoint)
    logger.warning("The Hub at %s cannot be reached: working offline, from local folders and the cache.", url)
    # datasets copies the setting when it is imported: switch its copy too if it is loaded (now or in the block)
    datasets_was = getattr(sys.modules.get("datasets.config"), "HF_HUB_OFFLINE", None)
    constants.HF_HUB_OFFLINE = True
    if datasets_was is not None:
        sys.modules["datasets.config"].HF_HUB_OFFLINE = True
    marker = _UNREACHABLE.set(url)
    try:
        yield True
    finally:
        _UNREACHABLE.reset(marker)
        constants.HF_HUB_OFFLINE = False
        if "datasets.config" in sys.modules:
            sys.modules["datasets.config"].HF_HUB_OFFLINE = bool(datasets_was)


def unreachable_endpoint() -> str | None:
    """The Hub endpoint :func:`offline_if_unreachable` found unreachable, inside its block; else ``None``."""
    return _UNREACHABLE.get()


def check_source_available(repo_id: str, *, revision: str | None = None) -> None:
    """Offline (set, or because the Hub cannot be reached), a source model not in the cache fails now.

    A local folder, or any source while the Hub is reachable, passes: what
    loading it needs is checked when it loads. Raises :class:`HubError` with
    the same advice as a failed load, before any data is read.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    if not constants.is_offline_mode() or Path(repo_id).expanduser().is_dir():
        return
    if isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str):
        return
    from huggingface_hub.errors import LocalEntryNotFoundError

    error = unreachable_source_error(LocalEntryNotFoundError(f"{repo_id} is not in the cache"), repo_id)
    assert error is not None
    raise error


def _endpoint(endpoint: str | None) -> str:
    from huggingface_hub import constants

    return (endpoint or constants.ENDPOINT).rstrip("/")


def resolve_token(token: str | None) -> str:
    """The token to push with: *token*, else ``HF_TOKEN``, else the one ``hf auth login`` stored.

    Raises :class:`HubError` (before any request) when there is none.
    """
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubError(f"Pushing to the Hub needs a token with write access, and none was found. {_login_hint()}")
    return found


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _is_network_error(exc: BaseException) -> bool:
    module = type(exc).__module__.split(".")[0]
    if module in ("httpx", "httpx2", "httpcore", "requests", "urllib3"):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


def hub_error(exc: BaseException, *, repo_id: str, endpoint: str, action: str, push: bool = True) -> HubError:
    """Translate a ``huggingface_hub``/network exception into a :class:`HubError` with advice."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    namespace = repo_id.split("/")[0] if "/" in repo_id else "your account"
    for cause in _causes(exc):
        if isinstance(cause, OfflineModeIsEnabled) and _UNREACHABLE.get() is not None:
            return HubError(f"Cannot {action}: the Hub at {_UNREACHABLE.get()} cannot be reached; check the network "
                            "connection (or HF_ENDPOINT) and retry.")
        if isinstance(cause, OfflineModeIsEnabled):
            return HubError(f"Cannot {action}: HF_HUB_OFFLINE is set, so the Hub is not contacted. Unset it and retry.")
        if isinstance(cause, HfHubHTTPError) and cause.response is not None:
            status = cause.response.status_code
            if status == 401 and not isinstance(cause, RepositoryNotFoundError):
                return HubError(
                    f"Cannot {action}: the Hub at {endpoint} rejected the token (401 Unauthorized): it is invalid "
                    f"or expired. Create a write token at https://huggingface.co/settings/tokens. {_login_hint()}"
                )
            if status == 403:
                return HubError(
                    f"Cannot {action}: you cannot write to {repo_id} (403 Forbidden). The namespace {namespace!r} "
                    "belongs to someone else, or your token is read-only. Push to your own namespace, or ask an "
                    f"admin of {namespace!r} for write access."
                )
            if isinstance(cause, RepositoryNotFoundError) or status == 404:
                return HubError(
                    f"Cannot {action}: no model repo {repo_id!r} at {endpoint}, or it is private and your token "
                    "cannot read it. Check the id (and the token, for private repos)."
                )
            detail = str(cause).splitlines()[0]
            after = "; nothing was committed" if push else ""
            return HubError(
                f"Cannot {action}: the Hub at {endpoint} answered HTTP {status} ({detail}){after}. Retry later."
            )
        if _is_network_error(cause):
            after = "nothing was committed (a Hub commit is all or nothing); " if push else ""
            return HubError(
                f"Cannot {action}: could not reach {endpoint} ({type(cause).__name__}: {cause}); {after}"
                "check the connection and retry."
            )
    return HubError(f"Cannot {action}: {type(exc).__name__}: {exc}")


def unreachable_source_error(exc: BaseException, source: str) -> HubError | None:
    """A :class:`HubError` with advice when loading the model *source* failed only because the Hub
    could not be reached (or ``HF_HUB_OFFLINE`` is set) and it is not in the local cache; else ``None``.

    transformers reports both as an ``OSError`` caused by huggingface_hub's
    ``LocalEntryNotFoundError``; a missing or private repo is a different error and gives ``None``.
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    causes = _causes(exc)
    if not any(isinstance(c, LocalEntryNotFoundError | OfflineModeIsEnabled) or _is_network_error(c) for c in causes):
        return None
    fixes = (
        "pass a local model folder instead (one written by `save_pretrained`, or by `hf download "
        f"{source} --local-dir DIR` on a machine that reaches the Hub), or copy a Hugging Face cache that holds it "
        "and point HF_HOME at it"
    )
    unreachable = _UNREACHABLE.get()
    if unreachable is not None:
        return HubError(
            f"Cannot load the source model {source!r}: the Hub at {unreachable} cannot be reached, and the local "
            f"cache ({constants.HF_HUB_CACHE}) does not hold it. Check the network connection (or HF_ENDPOINT), or "
            f"{fixes}."
        )
    if constants.is_offline_mode():
        return HubError(
            f"Cannot load the source model {source!r}: HF_HUB_OFFLINE is set, so only the local cache "
            f"({constants.HF_HUB_CACHE}) is read, and it does not hold this model. Unset HF_HUB_OFFLINE to "
            f"download it, or {fixes}."
        )
    network = next((c for c in causes if _is_network_error(c)), None)
    reason = f" ({type(network).__name__}: {network})" if network is not None else ""
    return HubError(
        f"Cannot load the source model {source!r}: the Hub at {_endpoint(None)} could not be reached{reason} and "
        f"the local cache ({constants.HF_HUB_CACHE}) does not hold it. Check the network connection (or "
        f"HF_ENDPOINT), or {fixes}. Working offline? Set HF_HUB_OFFLINE=1: tlzoo then reads only local folders "
        "and the cache, and fails at once instead of retrying."
    )


def check_push_target(repo_id: str, *, token: str | None = None, endpoint: str | None = None) -> str:
    """Check, before any long work, that *repo_id* is valid and the token may push to its namespace.

    Asks the Hub who the token belongs to (``whoami``) and compares the
    namespace with the user's name and organizations. Returns the user name;
    raises :class:`HubError` (no token: before any request).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise HubError(f"{repo_id!r} is not a valid Hub repo id (expected 'namespace/name'): {exc}") from exc
    token = resolve_token(token)
    url = _endpoint(endpoint)
    try:
        me = HfApi(endpoint=url, token=token).whoami()
    except Exception as exc:
        raise hub_error(exc, repo_id=repo_id, endpoint=url, action=f"push to {repo_id}", push=False) from exc
    user = str(me.get("name"))
    orgs = [str(org.get("name")) for org in me.get("orgs") or [] if isinstance(org, dict)]
    namespace = repo_id.split("/")[0] if "/" in repo_id else user
    if namespace not in (user, *orgs):
        member = f" (member of {', '.join(orgs)})" if orgs else ""
        raise HubError(
            f"You cannot write to {repo_id}: your token belongs to {user!r}{member}, not to {namespace!r}. "
            f"Push to '{user}/{repo_id.split('/')[-1]}', or use a token of {namespace!r}."
        )
    return user


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
    create_pr: bool = False,
) -> str:
    """Create the model repo *repo_id* if needed, then upload *folder* as one commit.

    The commit also deletes weight files and plots of an earlier push that the
    folder no longer has (:data:`STALE_PATTERNS`); other files in the repo are
    kept. Unchanged files are not uploaded again, and pushing an unchanged
    model makes no commit. Returns the commit URL (of the head commit when
    nothing changed; the pull-request URL with ``create_pr=True``).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HFValidationError

    token = resolve_token(token)
    url = _endpoint(endpoint)
    api = HfApi(endpoint=url, token=token)
    action = f"push to {repo_id}"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=Path(folder),
            commit_message=commit_message or "Upload model adapted with tlzoo",
            revision=revision,
            create_pr=create_pr,
            repo_type="model",
            delete_patterns=STALE_PATTERNS,
        )
    except HFValidationError as exc:
        raise HubError(f"Cannot {action}: {exc}") from exc
    except HubError:
        raise
    except Exception as exc:
        raise hub_error(exc, repo_id=repo_id, endpoint=url, action=action) from exc
    commit_url = (info.pr_url if create_pr and info.pr_url else info.commit_url) or str(info)
    logger.info("Pushed %s to %s", folder, commit_url)
    return commit_url


def download_model(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Download (or reuse from the cache) the snapshot of the model repo *repo_id*; return its folder.

    When the Hub cannot be reached, a snapshot in the cache is used as it is
    (see :func:`offline_if_unreachable`).
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    url = _endpoint(endpoint)
    kwargs: dict[str, Any] = {"revision": revision, "token": token, "endpoint": url, "cache_dir": cache_dir}
    with offline_if_unreachable(url):  # a cached snapshot at once; else one try, not half a minute of retries
        try:
            return Path(snapshot_download(repo_id, repo_type="model", **kwargs))
        except HFValidationError as exc:
            raise HubError(f"{repo_id!r} is neither a local folder nor a valid Hub repo id: {exc}") from exc
        except Exception as exc:
            error = hub_error(exc, repo_id=repo_id, endpoint=url, action=f"download {repo_id}", push=False)
            raise HubError(f"{error} (No local folder {repo_id!r} exists either.)") from exc
