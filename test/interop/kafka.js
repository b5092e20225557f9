// Kafka interop against Quartet with kafkajs.
// usage: node kafka.js ADDR
// Creates a 3-partition topic, produces keyed messages (idempotent producer,
// gzip), consumes them with a consumer group and checks every message
// arrived once and in order per partition; then checks a second consumer of
// the group resumes at the committed offsets.
// Exit 0 pass, 77 kafkajs not installed, 1 fail.
let kafkajs
try {
  kafkajs = require('kafkajs')
} catch (e) {
  console.log('SKIP: kafkajs not installed (npm install --prefix test/interop kafkajs)')
  process.exit(77)
}
const { Kafka, logLevel, CompressionTypes } = kafkajs
const addr = process.argv[2] || process.env.KAFKA_ADDR || '127.0.0.1:9092'
const N = 300
const PARTS = 3

function fail (msg) {
  console.log('FAIL: ' + msg)
  process.exit(1)
}

async function consume (kafka, topic, group, expect, timeoutMs) {
  const consumer = kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const got = []
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      got.push([partition, Number(message.offset), message.key.toString(), message.value.toString()])
    }
  })
  const deadline = Date.now() + timeoutMs
  while (got.length < expect && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  await consumer.disconnect() // commits the consumed offsets
  return got
}

async function main () {
  const kafka = new Kafka({ clientId: 'interop-js', brokers: [addr], logLevel: logLevel.ERROR })
  const topic = 'interop-js-' + Math.random().toString(16).slice(2, 10)
  const group = 'g-' + topic
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTS, replicationFactor: 1 }], waitForLeaders: true })
  await admin.disconnect()

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  for (let i = 0; i < N; i += 50) {
    const messages = []
    for (let j = i; j < i + 50; j++) messages.push({ key: 'k' + (j % 10), value: 'm' + j })
    await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages })
  }

  const got = await consume(kafka, topic, group, N, 30000)
  const seen = new Set()
  const last = {}
  for (const [p, o, , v] of got) {
    if (seen.has(v)) fail('duplicate ' + v)
    seen.add(v)
    if (p in last && o <= last[p]) fail(`out of order on partition ${p}: ${o} after ${last[p]}`)
    last[p] = o
  }
  if (seen.size !== N) fail(`got ${seen.size} distinct messages of ${N}`)
  const perKey = {}
  for (const [, , k, v] of got) (perKey[k] = perKey[k] || []).push(Number(v.slice(1)))
  for (const k in perKey) {
    const vs = perKey[k]
    for (let i = 1; i < vs.length; i++) if (vs[i] < vs[i - 1]) fail(`key ${k} out of order`)
  }

  await producer.send({ topic, acks: -1, messages: [{ key: 'k0', value: 'late' }] })
  await producer.disconnect()
  const again = await consume(kafka, topic, group, 1, 20000)
  if (again.length !== 1 || again[0][3] !== 'late') fail('after commit the group saw ' + JSON.stringify(again.slice(0, 5)))
  console.log(`kafkajs: ${N} messages once and in order, group resumed at committed offsets`)
}

main().then(() => process.exit(0), e => fail(e.stack || String(e)))
