"""Serving the editor with uvicorn: loopback by default, a loud warning otherwise."""

from __future__ import annotations

import ipaddress
import socket
import sys

from .app import LOOPBACK_HOSTS, create_app
from .session import EditorSession


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    return sock


def serve(session: EditorSession, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the editor until interrupted; prints the URL to open.

    Args:
        session: The editing session.
        host: Interface to listen on. Anything but loopback makes the editor (which has no
            authentication and writes to the output folder) reachable from other machines:
            it is allowed because it was asked for, with a warning.
        port: TCP port (0: any free one).

    """
    import uvicorn

    loopback = is_loopback(host)
    if not loopback:
        print(f"WARNING: the editor listens on {host}: anyone who can reach this machine on "
              f"port {port} can edit scenes and write files into {session.out_dir}. It has no "
              "authentication; use it only on a network you trust (default: 127.0.0.1).",
              file=sys.stderr)
    app = create_app(session, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    sock = bind(host, port)
    shown = host if loopback else "127.0.0.1"
    shown = f"[{shown}]" if ":" in shown else shown
    print(f"sisgen edit: open http://{shown}:{sock.getsockname()[1]}/  (Ctrl+C to stop; "
          f"saving to {session.out_dir})", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
