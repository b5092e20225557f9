// Package trie is the MQTT subscription trie: topic filters split on '/',
// one node per level, with the single-level wildcard '+' and the multi-level
// wildcard '#' as ordinary child keys. A publish is matched with one walk
// (Match) that appends the matching subscriptions to a caller-owned slice, so
// matching does not allocate.
//
//	root ─ "sensors" ─ "+" ─ "temp"   (sensors/+/temp)
//	                 └ "#"            (sensors/#)
//	     ─ "#"                        (#: not matched by $-topics)
//
// Topics whose first level starts with '$' are not matched by a leading '+'
// or '#' (MQTT 4.7.2). Shared subscriptions ($share/<group>/<filter>) are kept
// per node as groups; Match yields one member per group, round robin,
// preferring members the Online hook reports as connected.
package trie
