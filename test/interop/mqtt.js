// MQTT interop with MQTT.js (npm "mqtt"): MQTT 3.1.1 and 5 over TCP and
// WebSocket (/mqtt), QoS 0/1/2, retained messages, MQTT 5 user properties.
// Usage: node mqtt.js HOST:PORT WSHOST:WSPORT
const mqtt = require('mqtt');
const [addr, ws] = process.argv.slice(2);
let failed = false;

function check(name, cond, detail) {
  if (cond) console.log('ok   mqtt.js ' + name);
  else { console.log('FAIL mqtt.js ' + name + ' ' + JSON.stringify(detail)); failed = true; }
}

function connect(url, version, id) {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { protocolVersion: version, clientId: id, clean: true, reconnectPeriod: 0, connectTimeout: 5000 });
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

async function scenario(version, transport) {
  const url = transport === 'ws' ? `ws://${ws}/mqtt` : `mqtt://${addr}`;
  const tag = `js-${version}-${transport}-${process.pid}`;
  const base = `interop/js/${tag}`;
  const got = [];
  const sub = await connect(url, version, `${tag}-sub`);
  sub.on('message', (topic, payload, packet) => got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, user: packet.properties && packet.properties.userProperties }));
  await sub.subscribeAsync(`${base}/#`, { qos: 2 });
  const pub = await connect(url, version, `${tag}-pub`);
  for (const qos of [0, 1, 2]) {
    const opts = { qos };
    if (version === 5) opts.properties = { userProperties: { k: 'v' } };
    await pub.publishAsync(`${base}/q${qos}`, `hello-${qos}`, opts);
  }
  const deadline = Date.now() + 5000;
  while (got.length < 3 && Date.now() < deadline) await new Promise(r => setTimeout(r, 20));
  const ok = [0, 1, 2].every(q => got.some(m => m.topic === `${base}/q${q}` && m.payload === `hello-${q}` && m.qos === q &&
    (version !== 5 || (m.user && m.user.k === 'v'))));
  check(`${version === 5 ? '5' : '3.1.1'} ${transport} QoS 0/1/2`, ok && got.length === 3, got);
  await pub.publishAsync(`${base}/ret`, 'kept', { qos: 1, retain: true });
  const sub2 = await connect(url, version, `${tag}-sub2`);
  const got2 = [];
  sub2.on('message', (topic, payload, packet) => got2.push({ topic, payload: payload.toString(), retain: packet.retain }));
  await sub2.subscribeAsync(`${base}/ret`, { qos: 1 });
  const d2 = Date.now() + 5000;
  while (got2.length < 1 && Date.now() < d2) await new Promise(r => setTimeout(r, 20));
  check(`${version === 5 ? '5' : '3.1.1'} ${transport} retained`, got2.length === 1 && got2[0].payload === 'kept' && got2[0].retain, got2);
  await pub.publishAsync(`${base}/ret`, '', { qos: 1, retain: true });
  await Promise.all([sub.endAsync(), sub2.endAsync(), pub.endAsync()]);
}

(async () => {
  for (const version of [4, 5]) {
    for (const transport of ['tcp', 'ws']) {
      try { await scenario(version, transport); } catch (e) { check(`${version} ${transport}`, false, String(e)); }
    }
  }
  process.exit(failed ? 1 : 0);
})();
