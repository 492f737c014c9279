#!/usr/bin/env python3
"""Independent MCP client peer for mcp-warden integration tests.

Connects to one streamable-HTTP MCP endpoint (normally the mcp-warden proxy)
with the official Python MCP SDK (`mcp` on PyPI, 2.x) and runs one scenario of
assertions against it.

Scenarios:
  everything  backend @modelcontextprotocol/server-everything behind --prefix
              (default "everything__"): tool listing, echo, get-sum, a resource
              read (URI taken from resources/list), prompts.
  filesystem  backend @modelcontextprotocol/server-filesystem behind --prefix
              (default "fs__"), with --dir an allowed directory of that backend:
              seeded-file read, write + read back, directory listing, and a
              denied access outside the allowed directory.
  auto        connect with the `server/discover` probe (falls back to
              `initialize` on error) and count the aggregated tools.
  pinned      connect with a fixed protocol version (--protocol-version,
              default 2025-06-18) and count the aggregated tools.

Exit codes: 0 success (a JSON summary is printed on stdout), 1 an assertion
failed, 2 the peer could not run (connection error, timeout, bad usage).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

try:
    from mcp import Client, ClientSession, MCPError, types
    from mcp.client.streamable_http import streamable_http_client
    from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
except ImportError as exc:  # pragma: no cover - environment problem
    print(f"py_client: ERROR: the Python MCP SDK 2.x (`pip install mcp`) is required: {exc}", file=sys.stderr)
    sys.exit(2)

PEER_INFO = types.Implementation(name="mcp-warden-test-peer", version="1.0.0")
PAGE_CAP = 100

DEFAULT_PREFIXES = {"everything": "everything__", "filesystem": "fs__"}


class CheckFailed(Exception):
    """An assertion about the endpoint's behaviour did not hold."""


def check(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


# --------------------------------------------------------------------------
# Connection
# --------------------------------------------------------------------------


class Peer:
    """Uniform access to a connected endpoint.

    `client` is set for the SDK's high-level `Client` (modes auto, legacy and a
    modern version pin); `session` alone is set for a handshake-era version pin,
    which the high-level `Client` cannot express (its `initialize()` always
    offers the newest handshake version).
    """

    def __init__(self, *, mode: str, client: Client | None = None, session: ClientSession | None = None):
        self.mode = mode
        self.client = client
        self._session = session

    @property
    def session(self) -> ClientSession:
        if self.client is not None:
            return self.client.session
        assert self._session is not None
        return self._session

    @property
    def protocol_version(self) -> str | None:
        return self.session.protocol_version

    @property
    def era(self) -> str:
        if self.session.discover_result is not None:
            return "modern"
        if self.session.initialize_result is not None:
            return "legacy"
        return "unknown"

    @property
    def capabilities(self) -> types.ServerCapabilities | None:
        return self.session.server_capabilities

    @property
    def server_info(self) -> dict[str, Any] | None:
        info = self.session.server_info
        return info.model_dump(mode="json", exclude_none=True) if info is not None else None

    async def _paged(self, fetch: Callable[[str | None], Awaitable[Any]], attr: str) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(PAGE_CAP):
            page = await fetch(cursor)
            items.extend(getattr(page, attr))
            cursor = page.next_cursor
            if not cursor:
                return items
        raise CheckFailed(f"{attr}: pagination did not end within {PAGE_CAP} pages")

    @staticmethod
    def _params(cursor: str | None) -> types.PaginatedRequestParams | None:
        return types.PaginatedRequestParams(cursor=cursor) if cursor else None

    async def list_tools(self) -> list[types.Tool]:
        if self.client is not None:
            c = self.client
            return await self._paged(lambda cur: c.list_tools(cursor=cur), "tools")
        s = self.session
        return await self._paged(lambda cur: s.list_tools(params=self._params(cur)), "tools")

    async def list_resources(self) -> list[types.Resource]:
        if self.client is not None:
            c = self.client
            return await self._paged(lambda cur: c.list_resources(cursor=cur), "resources")
        s = self.session
        return await self._paged(lambda cur: s.list_resources(params=self._params(cur)), "resources")

    async def list_resource_templates(self) -> list[types.ResourceTemplate]:
        if self.client is not None:
            c = self.client
            return await self._paged(lambda cur: c.list_resource_templates(cursor=cur), "resource_templates")
        s = self.session
        return await self._paged(lambda cur: s.list_resource_templates(params=self._params(cur)), "resource_templates")

    async def list_prompts(self) -> list[types.Prompt]:
        if self.client is not None:
            c = self.client
            return await self._paged(lambda cur: c.list_prompts(cursor=cur), "prompts")
        s = self.session
        return await self._paged(lambda cur: s.list_prompts(params=self._params(cur)), "prompts")

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        if self.client is not None:
            return await self.client.call_tool(name, arguments)
        result = await self.session.call_tool(name, arguments)
        assert isinstance(result, types.CallToolResult)
        return result

    async def read_resource(self, uri: str) -> types.ReadResourceResult:
        if self.client is not None:
            return await self.client.read_resource(uri)
        result = await self.session.read_resource(uri)
        assert isinstance(result, types.ReadResourceResult)
        return result

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> types.GetPromptResult:
        if self.client is not None:
            return await self.client.get_prompt(name, arguments)
        result = await self.session.get_prompt(name, arguments)
        assert isinstance(result, types.GetPromptResult)
        return result


async def _handshake_at(session: ClientSession, version: str) -> types.InitializeResult:
    """`initialize` offering exactly `version`, then adopt the answer and send `initialized`."""
    result = await session.send_request(
        types.InitializeRequest(
            params=types.InitializeRequestParams(
                protocol_version=version,
                capabilities=types.ClientCapabilities(),
                client_info=PEER_INFO,
            )
        ),
        types.InitializeResult,
    )
    check(
        result.protocol_version == version,
        f"initialize offered protocolVersion {version!r} (a version the endpoint should support) "
        f"but the endpoint answered {result.protocol_version!r}",
    )
    session.adopt(result)
    await session.send_notification(types.InitializedNotification())
    return result


@asynccontextmanager
async def connect(url: str, mode: str, read_timeout: float) -> AsyncIterator[Peer]:
    """Connect in one of the modes:

    - "auto": `server/discover` probe, fallback to `initialize` (SDK default).
    - "legacy": plain `initialize` handshake at the SDK's newest handshake version.
    - a modern version (e.g. "2026-07-28"): adopt it directly, no probe.
    - a handshake-era version (e.g. "2025-06-18"): `initialize` offering exactly it.
    """
    if mode in ("auto", "legacy") or mode in MODERN_PROTOCOL_VERSIONS:
        client = Client(url, mode=mode, client_info=PEER_INFO, read_timeout_seconds=read_timeout, cache=None)
        async with client:
            yield Peer(mode=mode, client=client)
        return
    if mode in HANDSHAKE_PROTOCOL_VERSIONS:
        async with streamable_http_client(url) as (read_stream, write_stream):
            async with ClientSession(
                read_stream, write_stream, read_timeout_seconds=read_timeout, client_info=PEER_INFO
            ) as session:
                await _handshake_at(session, mode)
                yield Peer(mode=mode, session=session)
        return
    raise ValueError(
        f"unknown mode {mode!r}: use auto, legacy, or one of "
        f"{list(HANDSHAKE_PROTOCOL_VERSIONS) + list(MODERN_PROTOCOL_VERSIONS)}"
    )


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def texts(result: types.CallToolResult) -> list[str]:
    return [c.text for c in result.content if isinstance(c, types.TextContent)]


def first_text(result: types.CallToolResult, what: str) -> str:
    t = texts(result)
    check(bool(t), f"{what}: no text content in result: {result.model_dump(mode='json', exclude_none=True)}")
    return t[0]


def require_ok(result: types.CallToolResult, what: str) -> None:
    check(
        not result.is_error,
        f"{what}: tool returned isError=true: {texts(result) or result.model_dump(mode='json', exclude_none=True)}",
    )


def pick_tool(names: set[str], prefix: str, candidates: list[str], what: str) -> str:
    for c in candidates:
        if prefix + c in names:
            return prefix + c
    wanted = " or ".join(repr(prefix + c) for c in candidates)
    shown = sorted(names)
    raise CheckFailed(f"{what}: no tool named {wanted} in tools/list ({len(shown)} tools: {shown})")


def prefixed(names: set[str], prefix: str) -> list[str]:
    return sorted(n for n in names if n.startswith(prefix))


async def expect_rejected(call: Awaitable[Any]) -> str:
    """Await a call that must fail: a JSON-RPC error or a tool result with isError=true."""
    try:
        result = await call
    except MCPError as e:
        return f"jsonrpc error {e.error.code}: {e.error.message}"
    if isinstance(result, types.CallToolResult) and result.is_error:
        return "isError: " + " ".join(texts(result))[:200]
    raise CheckFailed(f"call expected to fail succeeded: {result.model_dump(mode='json', exclude_none=True)}")


def connection_summary(peer: Peer) -> dict[str, Any]:
    return {
        "mode": peer.mode,
        "era": peer.era,
        "protocol_version": peer.protocol_version,
        "server_info": peer.server_info,
    }


def check_tool_count(count: int, expect: int | None) -> None:
    if expect is not None:
        check(count == expect, f"tools/list returned {count} tools, expected exactly {expect}")
    else:
        check(count > 0, "tools/list returned no tools")


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


async def scenario_everything(peer: Peer, args: argparse.Namespace) -> dict[str, Any]:
    prefix: str = args.prefix
    summary: dict[str, Any] = {}
    checks: list[str] = []

    tools = await peer.list_tools()
    names = {t.name for t in tools}
    check_tool_count(len(tools), args.expect_tools)
    mine = prefixed(names, prefix)
    summary["tools_total"] = len(tools)
    summary["tools_with_prefix"] = mine
    pick_tool(names, prefix, ["echo"], "tools/list")
    pick_tool(names, prefix, ["get-sum", "add"], "tools/list")
    checks.append("tools/list has prefixed everything tools")

    # echo
    echo = pick_tool(names, prefix, ["echo"], "echo")
    message = f"warden-peer {uuid.uuid4().hex} ünïcødé"
    r = await peer.call_tool(echo, {"message": message})
    require_ok(r, echo)
    text = first_text(r, echo)
    check(text == f"Echo: {message}", f"{echo}: expected text {'Echo: ' + message!r}, got {text!r}")
    checks.append(f"{echo} echoed the message")

    # sum (get-sum in current releases, add in older ones)
    add = pick_tool(names, prefix, ["get-sum", "add"], "sum")
    r = await peer.call_tool(add, {"a": 19, "b": 23})
    require_ok(r, add)
    text = first_text(r, add)
    numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
    check(bool(numbers) and float(numbers[-1]) == 42, f"{add}: expected the sum 42 in {text!r}")
    checks.append(f"{add} returned 42")

    # unknown tool through the same namespace
    detail = await expect_rejected(peer.call_tool(f"{prefix}no-such-tool-{uuid.uuid4().hex[:8]}", {}))
    summary["unknown_tool"] = detail
    checks.append("unknown tool rejected")

    # resources: URIs come from resources/list (the endpoint may rewrite them)
    caps = peer.capabilities
    check(caps is not None and caps.resources is not None, "endpoint does not advertise the resources capability")
    resources = await peer.list_resources()
    check(bool(resources), "resources/list returned no resources")
    match = args.resource_match
    chosen = next(
        (r for r in resources if r.uri.endswith(match) or r.name.endswith(match)),
        None,
    )
    check(
        chosen is not None,
        f"resources/list has no resource whose URI or name ends with {match!r}: "
        f"{[(r.uri, r.name) for r in resources][:20]}",
    )
    assert chosen is not None
    read = await peer.read_resource(chosen.uri)
    check(bool(read.contents), f"resources/read {chosen.uri!r}: no contents")
    content = read.contents[0]
    check(
        isinstance(content, types.TextResourceContents) and bool(content.text),
        f"resources/read {chosen.uri!r}: expected non-empty text contents, got {type(content).__name__}",
    )
    assert isinstance(content, types.TextResourceContents)
    if args.resource_expect:
        check(
            args.resource_expect in content.text,
            f"resources/read {chosen.uri!r}: text does not contain {args.resource_expect!r}: {content.text[:120]!r}",
        )
    if not args.no_resource_uri_check:
        check(
            content.uri == chosen.uri,
            f"resources/read {chosen.uri!r}: contents[0].uri is {content.uri!r}, expected the URI from resources/list",
        )
    summary["resources_total"] = len(resources)
    summary["resource_read"] = {"uri": chosen.uri, "mime_type": content.mime_type, "chars": len(content.text)}
    try:
        summary["resource_templates"] = [t.uri_template for t in await peer.list_resource_templates()]
    except MCPError as e:
        summary["resource_templates"] = f"error {e.error.code}: {e.error.message}"
    checks.append("resource read via URI from resources/list")

    # prompts
    check(caps is not None and caps.prompts is not None, "endpoint does not advertise the prompts capability")
    prompts = await peer.list_prompts()
    pnames = {p.name for p in prompts}
    simple = pick_tool(pnames, prefix, ["simple-prompt", "simple_prompt"], "prompts/list")
    got = await peer.get_prompt(simple)
    check(bool(got.messages), f"prompts/get {simple}: no messages")
    msg = got.messages[0].content
    check(
        isinstance(msg, types.TextContent) and "simple prompt" in msg.text,
        f"prompts/get {simple}: unexpected first message {got.messages[0].model_dump(mode='json', exclude_none=True)}",
    )
    checks.append(f"prompts/get {simple}")
    if prefix + "args-prompt" in pnames:
        got = await peer.get_prompt(prefix + "args-prompt", {"city": "Lisbon", "state": "Estremadura"})
        msg = got.messages[0].content if got.messages else None
        check(
            isinstance(msg, types.TextContent) and "Lisbon" in msg.text and "Estremadura" in msg.text,
            f"prompts/get {prefix}args-prompt: arguments not applied: "
            f"{[m.model_dump(mode='json', exclude_none=True) for m in got.messages]}",
        )
        checks.append(f"prompts/get {prefix}args-prompt with arguments")
    summary["prompts_with_prefix"] = prefixed(pnames, prefix)
    summary["checks"] = checks
    return summary


async def scenario_filesystem(peer: Peer, args: argparse.Namespace) -> dict[str, Any]:
    prefix: str = args.prefix
    if not args.dir:
        raise ValueError("--dir (an allowed directory of the filesystem backend) is required for this scenario")
    base_dir = os.path.abspath(args.dir)
    check(os.path.isdir(base_dir), f"--dir {base_dir!r} is not a directory on this machine")
    checks: list[str] = []
    summary: dict[str, Any] = {"dir": base_dir}

    tools = await peer.list_tools()
    names = {t.name for t in tools}
    check_tool_count(len(tools), args.expect_tools)
    summary["tools_total"] = len(tools)
    summary["tools_with_prefix"] = prefixed(names, prefix)
    read_tool = pick_tool(names, prefix, ["read_text_file", "read_file"], "filesystem read")
    write_tool = pick_tool(names, prefix, ["write_file"], "filesystem write")
    list_tool = pick_tool(names, prefix, ["list_directory"], "filesystem list")
    checks.append("tools/list has prefixed filesystem tools")

    tag = uuid.uuid4().hex[:12]
    seeded = os.path.join(base_dir, f"peer-seed-{tag}.txt")
    written = os.path.join(base_dir, f"peer-write-{tag}.txt")
    seeded_text = f"seeded by the test peer {tag}\nsecond line\n"
    written_text = f"written through the endpoint {tag}\nłine two ✓\n"
    with open(seeded, "w", encoding="utf-8") as f:
        f.write(seeded_text)
    try:
        # read a file created on disk
        r = await peer.call_tool(read_tool, {"path": seeded})
        require_ok(r, read_tool)
        got = first_text(r, read_tool)
        check(got == seeded_text, f"{read_tool} {seeded}: expected {seeded_text!r}, got {got!r}")
        checks.append(f"{read_tool} returned the on-disk content")

        # write through the endpoint, then check the disk and read it back
        r = await peer.call_tool(write_tool, {"path": written, "content": written_text})
        require_ok(r, write_tool)
        check(os.path.isfile(written), f"{write_tool} {written}: reported success but no file on disk")
        with open(written, encoding="utf-8") as f:
            on_disk = f.read()
        check(on_disk == written_text, f"{write_tool} {written}: disk has {on_disk!r}, expected {written_text!r}")
        r = await peer.call_tool(read_tool, {"path": written})
        require_ok(r, read_tool)
        got = first_text(r, read_tool)
        check(got == written_text, f"{read_tool} {written}: expected {written_text!r}, got {got!r}")
        if r.structured_content is not None:
            check(
                r.structured_content.get("content") == written_text,
                f"{read_tool}: structuredContent.content differs from the text: {r.structured_content!r}",
            )
        checks.append(f"{write_tool} wrote the file and {read_tool} read it back")

        # directory listing
        r = await peer.call_tool(list_tool, {"path": base_dir})
        require_ok(r, list_tool)
        listing = first_text(r, list_tool)
        for p in (seeded, written):
            entry = f"[FILE] {os.path.basename(p)}"
            check(entry in listing.splitlines(), f"{list_tool} {base_dir}: {entry!r} missing from {listing!r}")
        checks.append(f"{list_tool} lists both files")

        # outside the allowed directory
        outside = os.path.join(os.path.dirname(base_dir.rstrip(os.sep)) or os.sep, f"peer-outside-{tag}.txt")
        summary["outside_access"] = await expect_rejected(peer.call_tool(read_tool, {"path": outside}))
        checks.append("read outside the allowed directory rejected")
    finally:
        if not args.keep_files:
            for p in (seeded, written):
                try:
                    os.remove(p)
                except FileNotFoundError:
                    pass
    summary["checks"] = checks
    return summary


async def scenario_count(peer: Peer, args: argparse.Namespace) -> dict[str, Any]:
    tools = await peer.list_tools()
    names = sorted(t.name for t in tools)
    check_tool_count(len(tools), args.expect_tools)
    check(len(set(names)) == len(names), f"tools/list has duplicate names: {names}")
    summary: dict[str, Any] = {"tools_total": len(tools), "tools": names}
    if args.prefix:
        mine = prefixed(set(names), args.prefix)
        check(bool(mine), f"no tool starts with prefix {args.prefix!r}: {names}")
        summary["tools_with_prefix"] = len(mine)
    return summary


SCENARIOS = {
    "everything": scenario_everything,
    "filesystem": scenario_filesystem,
    "auto": scenario_count,
    "pinned": scenario_count,
}


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="streamable-HTTP MCP endpoint, e.g. http://127.0.0.1:8080/mcp")
    p.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    p.add_argument(
        "--prefix",
        default=None,
        help="namespace prefix of the backend's tools/prompts (default: everything__ or fs__; "
        "none for auto/pinned; '' for a backend reached directly)",
    )
    p.add_argument(
        "--mode",
        default=None,
        help="auto (server/discover probe, fallback to initialize), legacy (initialize), "
        "or a protocol version to pin (default: auto; pinned scenario: --protocol-version)",
    )
    p.add_argument(
        "--protocol-version",
        default="2025-06-18",
        help="version for --scenario pinned (handshake-era versions use initialize, 2026-07-28 skips the probe)",
    )
    p.add_argument("--expect-tools", type=int, default=None, help="exact number of tools tools/list must return")
    p.add_argument("--expect-protocol", default=None, help="assert the negotiated protocol version")
    p.add_argument("--expect-era", choices=["modern", "legacy"], default=None, help="assert discover (modern) or initialize (legacy)")
    p.add_argument("--dir", default=None, help="filesystem scenario: an allowed directory of the filesystem backend")
    p.add_argument("--keep-files", action="store_true", help="filesystem scenario: leave the test files in --dir")
    p.add_argument("--resource-match", default="features.md", help="everything scenario: suffix of the resource URI/name to read")
    p.add_argument(
        "--resource-expect",
        default="Everything Server",
        help="everything scenario: text the resource must contain ('' to skip)",
    )
    p.add_argument(
        "--no-resource-uri-check",
        action="store_true",
        help="everything scenario: do not require contents[0].uri to equal the URI from resources/list",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="overall time limit in seconds")
    args = p.parse_args(argv)
    if args.prefix is None:
        args.prefix = DEFAULT_PREFIXES.get(args.scenario, "")
    if args.mode is None:
        args.mode = args.protocol_version if args.scenario == "pinned" else "auto"
    return args


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with anyio.fail_after(args.timeout):
        async with connect(args.url, args.mode, read_timeout=min(args.timeout, 30.0)) as peer:
            conn = connection_summary(peer)
            if args.expect_protocol is not None:
                check(
                    peer.protocol_version == args.expect_protocol,
                    f"negotiated protocol version {peer.protocol_version!r}, expected {args.expect_protocol!r}",
                )
            if args.expect_era is not None:
                check(peer.era == args.expect_era, f"negotiated era {peer.era!r}, expected {args.expect_era!r}")
            if args.scenario == "pinned":
                check(
                    peer.protocol_version == args.mode,
                    f"pinned {args.mode!r} but the session runs {peer.protocol_version!r}",
                )
            if args.scenario == "auto":
                check(peer.era in ("modern", "legacy"), "auto mode finished without discover or initialize")
            result = await SCENARIOS[args.scenario](peer, args)
    return {"ok": True, "scenario": args.scenario, "url": args.url, "prefix": args.prefix, **conn, **result}


def _leaves(exc: BaseException) -> list[BaseException]:
    nested = getattr(exc, "exceptions", None)  # (Base)ExceptionGroup, also the 3.10 backport
    if isinstance(nested, (list, tuple)):
        out: list[BaseException] = []
        for e in nested:
            out.extend(_leaves(e))
        return out
    return [exc]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MCPError):
        return f"MCPError {exc.error.code}: {exc.error.message}"
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        summary = anyio.run(run, args)
    except BaseException as exc:  # noqa: BLE001 - report every failure with a clear message
        if isinstance(exc, KeyboardInterrupt):
            raise
        leaves = _leaves(exc)
        failed = [e for e in leaves if isinstance(e, CheckFailed)]
        if failed:
            for e in failed:
                print(f"py_client: FAIL [{args.scenario} {args.url}]: {e}", file=sys.stderr)
            return 1
        for e in leaves:
            if isinstance(e, TimeoutError):
                print(f"py_client: ERROR [{args.scenario} {args.url}]: timed out after {args.timeout}s", file=sys.stderr)
            else:
                print(f"py_client: ERROR [{args.scenario} {args.url}]: {_describe(e)}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
