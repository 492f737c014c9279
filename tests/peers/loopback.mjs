// Preload for Node test peers: makes every listening socket that was not
// given an explicit host bind to 127.0.0.1 instead of all interfaces.
//
//   PORT=38111 node --import ./tests/peers/loopback.mjs \
//     .ci/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp
//
// server-everything calls app.listen(PORT) with no host argument and has no
// option for one; this keeps it off external interfaces during tests.
import net from "node:net";

const HOST = process.env.PEER_BIND_HOST || "127.0.0.1";
// For peers that listen on a fixed port (the SDK's examples): the port to use instead.
const PORT_OVERRIDE = process.env.PEER_PORT_OVERRIDE;
const originalListen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (PORT_OVERRIDE) {
      args[0] = Number(PORT_OVERRIDE);
    }
    // listen(port[, host][, backlog][, cb]): insert host when absent.
    if (typeof args[1] !== "string") {
      args.splice(1, 0, HOST);
    }
  } else if (first && typeof first === "object" && !Array.isArray(first) && first.path === undefined) {
    // listen({ port, host? }[, cb])
    if (first.host === undefined) {
      args[0] = { ...first, host: HOST };
    }
  }
  return originalListen.apply(this, args);
};
