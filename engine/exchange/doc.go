// Package exchange routes messages by exchange and binding, protocol-neutrally:
// the AMQP exchange types (direct, fanout, topic with `*` and `#`, headers with
// x-match all/any), exchange-to-exchange bindings and alternate exchanges.
//
// A Registry holds one virtual host's exchanges and bindings. Destinations are
// opaque (a queue of engine/queue, or an *Exchange for e2e bindings); Route
// follows exchange destinations and returns the distinct final destinations.
//
//	publish(ex, key, headers)
//	   │
//	   ▼
//	Exchange ──binding(key,args)──▶ Destination (queue)
//	   │  └─────binding──────────▶ Exchange ──▶ ... (e2e, loops cut)
//	   └─ no destination ─▶ alternate exchange
//
// Bindings change rarely and are read on every publish: Route takes a read
// lock; Bind/Unbind take the write lock.
package exchange
