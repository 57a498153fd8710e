"""`adapt serve`: the stakeholder demo over trained run directories (Gradio).

``build_app(run_dirs)`` finds the runs, loads one NF4 base with every adapter
and returns the ``gr.Blocks`` with its queue set; ``launch(...)`` serves it on
127.0.0.1 unless a host or ``share`` is asked for, with an optional login page (Gradio's form
login and session cookie, not HTTP basic auth; failed logins are slowed down), and no file uploads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from adapt.errors import AdaptError

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
MAX_QUEUE = 16
"""Requests waiting beyond this are turned away with 'queue full' instead of piling up."""
MAX_UPLOAD = "1kb"
"""Gradio accepts file uploads on every app; the demo takes none, so anything bigger is refused."""


def _gradio():
    # No usage analytics from a demo that may show private data; a user can still opt in explicitly.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise AdaptError("the demo needs gradio; `pip install 'adapt[demo]'` (or `pip install gradio`)") from None
    return gr


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """``user:password`` -> (user, password); None stays None."""
    if auth is None:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise AdaptError("--auth: expected USER:PASSWORD (both non-empty), e.g. --auth demo:s3cret")
    return user, password


def _login(pair: tuple[str, str] | None):
    """Gradio's form login behind a checker that slows down repeated failures (see adapt.demo.login)."""
    from adapt.demo.login import ThrottledLogin

    return ThrottledLogin(*pair) if pair else None


def build_app(run_dirs: list[Path], device: str = "cpu", max_queue: int = MAX_QUEUE) -> gr.Blocks:
    """The demo app over ``run_dirs`` (run directories or folders holding them), queue configured."""
    _gradio()
    from adapt.demo.runs import discover
    from adapt.demo.service import DemoService
    from adapt.demo.ui import build_blocks

    runs = discover([Path(p) for p in run_dirs])
    service = DemoService.start(runs, device=device)
    demo = build_blocks(service)
    concurrency = max(r.recipe.serve.concurrency for r in runs.all)
    # One shared model: requests serialize on its lock; the queue bounds how many run and wait.
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    demo.adapt_service = service  # for tests and benchmarks
    return demo


def start(demo: gr.Blocks, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, share: bool = False,
          auth: str | tuple[str, str] | None = None, block: bool = True):
    """Serve a built app; ``block=False`` returns at once (tests), the caller then calls ``demo.close()``.
    ``auth``: ``USER:PASSWORD``, or the pair :func:`parse_auth` made of it."""
    from adapt.demo.ui import CSS

    gr = _gradio()
    auth = auth if isinstance(auth, tuple) else parse_auth(auth)
    if host not in ("127.0.0.1", "localhost", "::1") or share:
        log.warning("the demo is reachable beyond this machine (host=%s, share=%s)%s", host, share, "" if auth else "; consider --auth USER:PASSWORD")
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=_login(auth),
        max_file_size=MAX_UPLOAD,
        prevent_thread_lock=not block,
        show_error=False,
        quiet=not block,
        theme=gr.themes.Soft(primary_hue="teal"),
        css=CSS,
        footer_links=[],
    )


def launch(run_dirs: list[Path], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, share: bool = False, auth: str | None = None) -> None:
    """`adapt serve RUNS...`: build the app and serve it until interrupted."""
    auth_pair = parse_auth(auth)  # fail on a bad --auth before minutes of model loading
    demo = build_app(run_dirs)
    print(f"adapt demo on http://{host}:{port}" + (" (login page on)" if auth_pair else ""))
    start(demo, host=host, port=port, share=share, auth=auth_pair, block=True)
