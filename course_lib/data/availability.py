"""Whether a real dataset can be had: the error the online loaders raise, and the network probe they ask first."""

from __future__ import annotations

import socket
import threading

__all__ = ["DataUnavailableError", "network_available"]


class DataUnavailableError(RuntimeError):
    """A real dataset could not be loaded (typically: no network and no local copy)."""


def network_available(host: tuple[str, int], timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host`` opens within ``timeout`` seconds in all.

    The name lookup is not covered by a socket's timeout (a broken resolver can stall for tens of seconds), so
    the attempt runs in a daemon thread and the answer is "no" once ``timeout`` has passed. The loaders call it
    as ``availability.network_available`` so that a test can replace it in one place.

    Example:
        >>> network_available(("www.cs.toronto.edu", 443), timeout=1.0)  # doctest: +SKIP
        True
    """
    answer: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection(host, timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])
