// Interop: the npm `ws` client (an independent implementation) against the
// real mbgw binary: text, binary, fragmented, 1 MiB, ping/pong, close codes,
// subprotocol selection. Prints 'N passed, N failed'; exits non-zero on
// failure. Every wait is bounded.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

const BIN = process.env.MBGW_BIN ?? 'build/mbgw';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

function within(ms, what, promise) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); }),
  ]);
}

async function startServer() {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mbgw-interop-'));
  const conf = join(dir, 'conf.d');
  mkdirSync(conf);
  writeFileSync(join(conf, '00-server.conf'),
    `[server]\nlisten = 127.0.0.1:${port}\nworkers = 2\nlog_level = debug\n`);
  writeFileSync(join(conf, '10-routes.conf'),
    '[route echo]\npath = /ws\nplugin = echo\nformat = raw\n\n' +
    '[route proto]\npath = /proto\nplugin = echo\nformat = raw\nsubprotocols = chat.v2, chat.v1\n');
  const logPath = join(dir, 'mbgw.log');
  const proc = spawn(BIN, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 10000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error('mbgw did not start:\n' + log);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port, log: () => log,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await within(15000, 'mbgw exit', new Promise((r) => proc.on('exit', r)));
      }
      writeFileSync(logPath, log);
      rmSync(dir, { recursive: true, force: true });
      return proc.exitCode;
    },
  };
}

function open(url, protocols, opts) {
  const ws = new WebSocket(url, protocols, { maxPayload: 64 * 1024 * 1024, ...opts });
  const messages = [];
  const waiters = [];
  ws.on('message', (data, isBinary) => {
    const m = { data, isBinary };
    const w = waiters.shift();
    if (w) w(m); else messages.push(m);
  });
  ws.next = () => within(10000, 'message', new Promise((resolve) => {
    const m = messages.shift();
    if (m) resolve(m); else waiters.push(resolve);
  }));
  return within(5000, 'open', new Promise((resolve, reject) => {
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  }));
}

function closed(ws) {
  return within(5000, 'close', new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))));
}

const tests = {
  async text_and_binary(s) {
    const ws = await open(`ws://127.0.0.1:${s.port}/ws`);
    ws.send('hello, κόσμε');
    let m = await ws.next();
    assert.equal(m.isBinary, false);
    assert.equal(m.data.toString(), 'hello, κόσμε');
    const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
    ws.send(bin);
    m = await ws.next();
    assert.equal(m.isBinary, true);
    assert.deepEqual(m.data, bin);
    ws.close(1000, 'bye');
    const c = await closed(ws);
    assert.equal(c.code, 1000);
  },
  async fragmented(s) {
    const ws = await open(`ws://127.0.0.1:${s.port}/ws`);
    ws.send('frag-', { fin: false });
    ws.send('men-', { fin: false });
    ws.send('ted', { fin: true });
    const m = await ws.next();
    assert.equal(m.data.toString(), 'frag-men-ted');
    ws.close();
    await closed(ws);
  },
  async one_mebibyte(s) {
    const ws = await open(`ws://127.0.0.1:${s.port}/ws`);
    const big = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    ws.send(big);
    const m = await ws.next();
    assert.equal(m.data.length, big.length);
    assert.ok(m.data.equals(big));
    ws.close();
    await closed(ws);
  },
  async too_big_closes_1009(s) {
    const ws = await open(`ws://127.0.0.1:${s.port}/ws`);
    ws.send(Buffer.alloc(1024 * 1024 + 1));
    const c = await closed(ws);
    assert.equal(c.code, 1009);
  },
  async ping_pong(s) {
    const ws = await open(`ws://127.0.0.1:${s.port}/ws`);
    const pong = within(5000, 'pong', new Promise((resolve) => ws.on('pong', resolve)));
    ws.ping(Buffer.from('are you there'));
    const data = await pong;
    assert.equal(data.toString(), 'are you there');
    ws.close();
    await closed(ws);
  },
  async close_codes_echoed(s) {
    for (const code of [1000, 1001, 3000, 4999]) {
      const ws = await open(`ws://127.0.0.1:${s.port}/ws`);
      ws.close(code, 'reason');
      const c = await closed(ws);
      assert.equal(c.code, code);
    }
  },
  async subprotocol_server_preference(s) {
    let ws = await open(`ws://127.0.0.1:${s.port}/proto`, ['chat.v1', 'chat.v2']);
    assert.equal(ws.protocol, 'chat.v2');
    ws.close();
    await closed(ws);
    ws = await open(`ws://127.0.0.1:${s.port}/proto`, ['chat.v1', 'other']);
    assert.equal(ws.protocol, 'chat.v1');
    ws.close();
    await closed(ws);
  },
  async unknown_path_is_404(s) {
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/nope`);
    const status = await within(5000, '404', new Promise((resolve) => {
      ws.on('unexpected-response', (req, res) => resolve(res.statusCode));
      ws.on('error', () => {});
    }));
    assert.equal(status, 404);
  },
  async many_clients_concurrently(s) {
    const clients = await Promise.all(Array.from({ length: 50 }, () => open(`ws://127.0.0.1:${s.port}/ws`)));
    clients.forEach((ws, i) => ws.send(`client ${i}`));
    const got = await Promise.all(clients.map((ws) => ws.next()));
    got.forEach((m, i) => assert.equal(m.data.toString(), `client ${i}`));
    clients.forEach((ws) => ws.close());
    await Promise.all(clients.map(closed));
  },
};

let passed = 0, failed = 0;
const s = await startServer();
try {
  for (const [name, fn] of Object.entries(tests)) {
    try {
      await fn(s);
      passed++;
      console.log(`PASS ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e.stack}`);
    }
  }
} finally {
  const code = await s.stop();
  if (code !== 0) { failed++; console.log(`FAIL server exit status ${code}`); }
  if (/AddressSanitizer|runtime error:/.test(s.log())) { failed++; console.log('FAIL sanitizer report in server log:\n' + s.log()); }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed || !passed ? 1 : 0);
