"""`teambridge mcp list`: connect to each server of mcp_servers and print its tools, or why it is unreachable."""
from __future__ import annotations

import argparse

from bots.cli.base import EXIT_FAILED, EXIT_OK, Invocation


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("mcp", parents=[common], help="the MCP servers of mcp_servers")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common],
                       help="connect and list each server's tools (and whether a call needs approval)")
    parser.set_defaults(handler=_mcp)


async def _mcp(inv: Invocation) -> int:
    from core.tools.mcp import McpServers, mcp_listing

    config = inv.cfg
    if not config.mcp_servers:
        print("No MCP servers in the config (mcp_servers:).")
        return EXIT_OK
    servers = McpServers(config.mcp_servers, inv.env, base_dir=config.base_dir)
    await servers.start()
    try:
        await servers.wait_ready(max(s.connect_timeout for s in config.mcp_servers.values()) + 1)
        text, all_up = mcp_listing(config, servers)
    finally:
        await servers.aclose()
    print(text)
    return EXIT_OK if all_up else EXIT_FAILED
