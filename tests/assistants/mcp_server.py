"""A tiny MCP server (stdio) for the tests: one tool, `count_words`."""

from mcp.server.fastmcp import FastMCP

server = FastMCP("words")


@server.tool()
def count_words(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


if __name__ == "__main__":
    server.run()
