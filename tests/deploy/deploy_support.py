"""Small helpers shared by the Python deploy tests in this folder."""
import socket
import sys

SKIP = 77  # ctest SKIP_RETURN_CODE of the tests that need the model


class Reporter:
    """log() and fail() lines prefixed with the test's name; fail() exits 1."""

    def __init__(self, name):
        self.name = name

    def log(self, msg):
        print(f"{self.name}: {msg}", flush=True)

    def fail(self, msg):
        self.log("FAIL: " + msg)
        sys.exit(1)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
