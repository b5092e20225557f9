// amqplib against Quartet: confirm channel, topic exchange, manual acks, prefetch.
const amqp = require('amqplib');
const addr = process.env.AMQP_ADDR || process.argv[2];

async function main() {
  const conn = await amqp.connect(`amqp://guest:guest@${addr}`);
  const ch = await conn.createConfirmChannel();
  await ch.assertExchange('js.topic', 'topic', { durable: false });
  const { queue } = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(queue, 'js.topic', 'orders.#');
  const n = 100;
  for (let i = 0; i < n; i++) {
    ch.publish('js.topic', `orders.eu.${i}`, Buffer.from(`o${i}`), { persistent: true, messageId: `id${i}` });
  }
  await ch.waitForConfirms();
  const cons = await conn.createChannel();
  await cons.prefetch(7);
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout after ${got.length}`)), 10000);
    cons.consume(queue, (msg) => {
      got.push(msg.content.toString());
      cons.ack(msg);
      if (got.length === n) { clearTimeout(timer); resolve(); }
    });
  });
  for (let i = 0; i < n; i++) if (got[i] !== `o${i}`) throw new Error(`order: ${got[i]} at ${i}`);
  // get + reject to a dead-letter queue
  await ch.assertExchange('js.dlx', 'fanout', { durable: false });
  const dlq = (await ch.assertQueue('', { exclusive: true })).queue;
  await ch.bindQueue(dlq, 'js.dlx', '');
  const src = (await ch.assertQueue('', { exclusive: true, deadLetterExchange: 'js.dlx' })).queue;
  ch.sendToQueue(src, Buffer.from('bad'));
  await ch.waitForConfirms();
  const m = await cons.get(src);
  cons.reject(m, false);
  await new Promise((r) => setTimeout(r, 100));
  const d = await cons.get(dlq, { noAck: true });
  if (!d || d.content.toString() !== 'bad' || !d.properties.headers['x-death']) throw new Error('dead letter missing');
  await conn.close();
  console.log(`amqplib: ok (${n} confirmed, topic routed, prefetch 7 manual acks, reject to DLX)`);
}
main().catch((e) => { console.error('amqplib:', e); process.exit(1); });
