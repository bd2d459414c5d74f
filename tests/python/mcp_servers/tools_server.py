"""An upstream MCP server for the gateway's tests, built with the official
MCP Python SDK. `http PORTFILE LOG` serves Streamable HTTP on a free port
(written to PORTFILE) and appends one JSON line per request to LOG (the
Authorization header it received and the JSON-RPC method and tool);
`sse PORTFILE LOG` serves the legacy HTTP+SSE transport (GET /sse, POST
/messages/) the same way; `stdio LOG` speaks stdio and logs tool calls the
same way."""

import json
import os
import socket
import sys

from mcp import types
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

LOG = sys.argv[-1]
app = MCPServer("test-tools")


def log(entry):
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


@app.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    log({"tool": "add"})
    return a + b


# The description can come from a file, so a test can change it between
# two runs of the process (a "rug pull").
ECHO_DESC = "Repeat the text back."
if os.environ.get("ECHO_DESC_FILE") and os.path.exists(os.environ["ECHO_DESC_FILE"]):
    ECHO_DESC = open(os.environ["ECHO_DESC_FILE"]).read()


@app.tool(description=ECHO_DESC)
def echo(text: str) -> str:
    log({"tool": "echo", "text": text})
    return text


@app.tool()
def lookup_email(user: str) -> str:
    """A user's email address (personal data in a tool's result)."""
    log({"tool": "lookup_email", "user": user})
    return f"{user}@corp.example.com"


@app.tool()
def drop_table(name: str) -> str:
    """Drop a table (a dangerous tool the tests keep from callers)."""
    log({"tool": "drop_table"})
    return f"dropped {name}"


@app.tool()
def crash() -> str:
    """Exit the process at once (stdio restart tests)."""
    log({"tool": "crash"})
    os._exit(3)


@app.tool()
async def announce(ctx: Context) -> str:
    """Tell the client the tool list changed (list_changed relay tests)."""
    log({"tool": "announce"})
    await ctx.session.send_tool_list_changed()
    return "announced"


@app.tool()
async def steps(n: int, ctx: Context) -> str:
    """Report progress and log a line per step (relay tests)."""
    log({"tool": "steps"})
    for i in range(1, n + 1):
        await ctx.info(f"step {i} of {n}")
        await ctx.report_progress(i, n, f"step {i}")
    return "done"


@app.tool()
async def ask_model(question: str, ctx: Context) -> str:
    """Ask the client's model through sampling (relay tests)."""
    log({"tool": "ask_model"})
    r = await ctx.session.create_message(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=question))],
        max_tokens=20,
        related_request_id=ctx.request_id,
    )
    return f"{r.model}: {r.content.text}"


class Confirm(BaseModel):
    ok: bool


@app.tool()
async def confirm(action: str, ctx: Context) -> str:
    """Ask the user to confirm through elicitation (relay tests)."""
    log({"tool": "confirm"})
    r = await ctx.elicit(f"Really {action}?", Confirm)
    return f"{r.action} {r.data.ok}" if r.action == "accept" else r.action


@app.prompt()
def greet(name: str) -> str:
    """A greeting prompt."""
    return f"Hello {name}"


def serve_http(portfile, legacy_sse=False):
    import uvicorn

    starlette_app = app.sse_app() if legacy_sse else app.streamable_http_app()

    async def recorder(scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            body = b""
            more = True
            messages = []
            while more:
                m = await receive()
                messages.append(m)
                body += m.get("body", b"")
                more = m.get("more_body", False)
            try:
                msg = json.loads(body) if body else {}
            except ValueError:
                msg = {}
            log({
                "http": scope["method"],
                "authorization": headers.get("authorization"),
                "x-api-key": headers.get("x-api-key"),
                "session": headers.get("mcp-session-id"),
                "method": msg.get("method") if isinstance(msg, dict) else None,
                "tool": (msg.get("params") or {}).get("name") if isinstance(msg, dict) else None,
            })

            async def replay():
                return messages.pop(0) if messages else await receive()

            return await starlette_app(scope, replay, send)
        return await starlette_app(scope, receive, send)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(portfile + ".tmp", portfile)
    config = uvicorn.Config(recorder, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    if sys.argv[1] == "http":
        serve_http(sys.argv[2])
    elif sys.argv[1] == "sse":
        serve_http(sys.argv[2], legacy_sse=True)
    else:
        app.run("stdio")
