"""An MCP server that first floods stdout with lines that are not JSON-RPC.

``python garbage_mcp_server.py SECONDS``: prints garbage as fast as the pipe takes it for
SECONDS, then becomes the test server (``tests/agent/mcp_test_server.py``), which reads the
requests that waited in its stdin meanwhile and answers them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "agent" / "mcp_test_server.py"


def main() -> None:
    end = time.monotonic() + float(sys.argv[1])
    lines = b"not JSON-RPC, a stray print: " + b"x" * 80 + b"\n"
    while time.monotonic() < end:
        os.write(1, lines * 20)
    os.execv(sys.executable, [sys.executable, str(SERVER)])


if __name__ == "__main__":
    main()
