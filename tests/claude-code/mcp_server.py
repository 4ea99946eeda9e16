#!/usr/bin/env python3
"""A tiny stdio MCP server for the Claude Code client tests (tests/src/claude_code.rs).

Speaks newline-delimited JSON-RPC 2.0 on stdin/stdout: initialize, tools/list (one tool,
`echo`), tools/call, ping, and empty resources/prompts lists. When MCP_LOG is set, it appends
one line per start and per received method to that file, so a test can tell whether the client
ever started the server.
"""
import json
import os
import sys

LOG = os.environ.get("MCP_LOG")


def log(line):
    if LOG:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def reply(msg_id, result=None, error=None):
    msg = {"jsonrpc": "2.0", "id": msg_id}
    if error is not None:
        msg["error"] = error
    else:
        msg["result"] = result
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def main():
    log("started " + json.dumps(sys.argv[1:]))
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        method = msg.get("method", "")
        log("recv " + str(method))
        if "id" not in msg:
            continue  # a notification
        params = msg.get("params") or {}
        if method == "initialize":
            reply(msg["id"], {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "palisade-test-mcp", "version": "1.0.0"},
            })
        elif method == "tools/list":
            reply(msg["id"], {"tools": [{
                "name": "echo",
                "description": "Echo the text back",
                "inputSchema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                    "required": ["text"],
                },
            }]})
        elif method == "tools/call":
            text = str((params.get("arguments") or {}).get("text", ""))
            reply(msg["id"], {"content": [{"type": "text", "text": "echo: " + text}]})
        elif method == "resources/list":
            reply(msg["id"], {"resources": []})
        elif method == "prompts/list":
            reply(msg["id"], {"prompts": []})
        elif method == "ping":
            reply(msg["id"], {})
        else:
            reply(msg["id"], error={"code": -32601, "message": "method not found: " + str(method)})


if __name__ == "__main__":
    main()
