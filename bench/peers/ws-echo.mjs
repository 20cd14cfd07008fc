// ws-echo — the Node.js `ws` comparison peer for mbgw-bench.
//
//   node ws-echo.mjs PORT [--path /ws] [--tls CERT KEY] [--deflate]
//
// A plain echo at ws://127.0.0.1:PORT/ws with npm `ws` and `bufferutil`
// (the native masking helper ws picks up by itself when installed): every
// text or binary message is sent back as it came. Also serves
// /broadcast, where every message is sent to every client of that path
// (used to try mbgw-bench's broadcast mode; mbgw's own is pending).
// SIGTERM/SIGINT stop it.
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import { WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const port = Number(args[0]);
let path = '/ws';
let tls = null;
let deflate = false;
for (let i = 1; i < args.length; i++) {
  if (args[i] === '--path') path = args[++i];
  else if (args[i] === '--tls') tls = { cert: fs.readFileSync(args[++i]), key: fs.readFileSync(args[++i]) };
  else if (args[i] === '--deflate') deflate = true;
  else { console.error(`ws-echo: unknown argument '${args[i]}'`); process.exit(2); }
}
if (!(port > 0 && port < 65536)) {
  console.error('usage: node ws-echo.mjs PORT [--path /ws] [--tls CERT KEY] [--deflate]');
  process.exit(2);
}

let bufferutil = 'absent';
try { await import('bufferutil'); bufferutil = 'loaded'; } catch { /* ws falls back to JS masking */ }

const server = tls ? https.createServer(tls) : http.createServer();
server.on('request', (req, res) => { res.writeHead(404); res.end(); });
const opts = { noServer: true, perMessageDeflate: deflate ? { threshold: 0 } : false };
const echo = new WebSocketServer(opts);
const bcast = new WebSocketServer(opts);

echo.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
bcast.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const peer of bcast.clients) peer.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});

server.on('upgrade', (req, socket, head) => {
  const wss = req.url === path ? echo : req.url === '/broadcast' ? bcast : null;
  if (!wss) { socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n'); return; }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

server.listen(port, '127.0.0.1', () => {
  console.error(`ws-echo: node ${process.version}, ws with bufferutil ${bufferutil}, on 127.0.0.1:${port}${path}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const ws of echo.clients) ws.terminate();
    for (const ws of bcast.clients) ws.terminate();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
