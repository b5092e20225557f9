// Package group is the classic (pre-KIP-848) consumer-group coordinator used
// by the Kafka protocol: JoinGroup / SyncGroup / Heartbeat / LeaveGroup with
// generations, rebalance and session timeouts, static membership
// (group.instance.id), and committed offsets.
//
// The coordinator never looks inside the members' protocol metadata or the
// leader's assignments: they are passed through unchanged, so every client-side
// assignor (range, round-robin, sticky, cooperative-sticky) works.
//
// State machine of a group (as in Kafka's GroupCoordinator):
//
//	         join                     all joined / rebalance timeout
//	Empty ─────────▶ PreparingRebalance ──────────────────▶ CompletingRebalance
//	  ▲                  ▲        ▲                                 │ leader's SyncGroup
//	  │ last member      │ join,  │ member leaves / expires         ▼
//	  └──────────────────┴─leave──┴──────────────────────────── Stable
//
// Committed offsets live in the engine's metadata store (namespace "offsets"),
// one key per group/topic/partition:
//
//	key   = group 0x00 topic 0x00 partition(decimal)
//	value = offset int64 | leaderEpoch int32 | commitMs int64 | metadata (rest)
//
// Results are delivered through callbacks, which may run on any goroutine
// (the caller's, a timer's, or the metadata store's); they are never called
// with the coordinator's lock held.
package group
