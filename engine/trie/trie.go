package trie

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrInvalidFilter is returned for a malformed shared-subscription filter.
var ErrInvalidFilter = errors.New("trie: invalid topic filter")

// Sub is one subscription: the subscriber, its options byte (MQTT 5
// subscription options: QoS in bits 0–1, no-local 0x04, retain-as-published
// 0x08, retain handling bits 4–5) and its subscription identifier (0: none).
type Sub[S comparable] struct {
	S     S
	Opts  byte
	ID    uint32
	Share bool // matched through a shared subscription
	// Filter is the shared subscription's filter as subscribed
	// ($share/group/filter), "" for an ordinary one.
	Filter string
}

// QoS returns the subscription's maximum QoS.
func (s Sub[S]) QoS() byte { return s.Opts & 3 }

type group[S comparable] struct {
	members []Sub[S]
	next    atomic.Uint32
}

type node[S comparable] struct {
	parent   *node[S]
	key      string
	children map[string]*node[S]
	subs     []Sub[S]
	shared   map[string]*group[S]
}

func (n *node[S]) empty() bool {
	return len(n.children) == 0 && len(n.subs) == 0 && len(n.shared) == 0
}

// Trie is safe for concurrent use: Match takes a read lock.
type Trie[S comparable] struct {
	mu    sync.RWMutex
	root  node[S]
	count int
	// Online, if set, lets shared-subscription matching skip members that
	// are not connected. It is called under the trie's read lock.
	Online func(S) bool
}

// SplitShared splits "$share/group/filter" into (group, filter, true).
func SplitShared(filter string) (grp, f string, shared bool, err error) {
	if !strings.HasPrefix(filter, "$share/") {
		return "", filter, false, nil
	}
	rest := filter[len("$share/"):]
	i := strings.IndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return "", "", true, ErrInvalidFilter
	}
	grp, f = rest[:i], rest[i+1:]
	if strings.ContainsAny(grp, "+#") {
		return "", "", true, ErrInvalidFilter
	}
	return grp, f, true, nil
}

// Subscribe adds or replaces s's subscription to filter (which may be a
// $share/... filter). It reports whether s was already subscribed.
func (t *Trie[S]) Subscribe(filter string, s Sub[S]) (existed bool, err error) {
	grp, f, shared, err := SplitShared(filter)
	if err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := &t.root
	for {
		i := strings.IndexByte(f, '/')
		level := f
		if i >= 0 {
			level = f[:i]
		}
		c := n.children[level]
		if c == nil {
			if n.children == nil {
				n.children = make(map[string]*node[S], 1)
			}
			c = &node[S]{parent: n, key: level}
			n.children[level] = c
		}
		n = c
		if i < 0 {
			break
		}
		f = f[i+1:]
	}
	if shared {
		s.Share = true
		s.Filter = filter
		if n.shared == nil {
			n.shared = make(map[string]*group[S], 1)
		}
		g := n.shared[grp]
		if g == nil {
			g = &group[S]{}
			n.shared[grp] = g
		}
		for i := range g.members {
			if g.members[i].S == s.S {
				g.members[i] = s
				return true, nil
			}
		}
		g.members = append(g.members, s)
		t.count++
		return false, nil
	}
	for i := range n.subs {
		if n.subs[i].S == s.S {
			n.subs[i] = s
			return true, nil
		}
	}
	n.subs = append(n.subs, s)
	t.count++
	return false, nil
}

// Unsubscribe removes subscriber s from filter; it reports whether it was there.
func (t *Trie[S]) Unsubscribe(filter string, s S) bool {
	grp, f, shared, err := SplitShared(filter)
	if err != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.lookupLocked(f)
	if n == nil {
		return false
	}
	found := false
	if shared {
		g := n.shared[grp]
		if g == nil {
			return false
		}
		for i := range g.members {
			if g.members[i].S == s {
				g.members = append(g.members[:i], g.members[i+1:]...)
				found = true
				break
			}
		}
		if len(g.members) == 0 {
			delete(n.shared, grp)
		}
	} else {
		for i := range n.subs {
			if n.subs[i].S == s {
				last := len(n.subs) - 1
				n.subs[i] = n.subs[last]
				var zero Sub[S]
				n.subs[last] = zero
				n.subs = n.subs[:last]
				found = true
				break
			}
		}
	}
	if found {
		t.count--
	}
	for n != &t.root && n.empty() {
		p := n.parent
		delete(p.children, n.key)
		n = p
	}
	return found
}

// Members appends the members of shared subscription filter
// ($share/group/filter) to dst and returns it (nothing for another filter).
func (t *Trie[S]) Members(filter string, dst []Sub[S]) []Sub[S] {
	grp, f, shared, err := SplitShared(filter)
	if err != nil || !shared {
		return dst
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if n := t.lookupLocked(f); n != nil {
		if g := n.shared[grp]; g != nil {
			dst = append(dst, g.members...)
		}
	}
	return dst
}

// lookupLocked returns the node of filter f (levels matched literally, as
// subscriptions are stored), or nil if none.
func (t *Trie[S]) lookupLocked(f string) *node[S] {
	n := &t.root
	for {
		i := strings.IndexByte(f, '/')
		level := f
		if i >= 0 {
			level = f[:i]
		}
		if n = n.children[level]; n == nil || i < 0 {
			return n
		}
		f = f[i+1:]
	}
}

// Count is the number of subscriptions held.
func (t *Trie[S]) Count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}

// Match appends every subscription matching topic to dst (one member per
// shared group) and returns it. A subscriber with several matching filters
// appears once per filter; the caller merges.
func (t *Trie[S]) Match(topic []byte, dst []Sub[S]) []Sub[S] {
	dollar := len(topic) > 0 && topic[0] == '$'
	t.mu.RLock()
	dst = t.match(&t.root, topic, dst, dollar)
	t.mu.RUnlock()
	return dst
}

func (t *Trie[S]) match(n *node[S], topic []byte, dst []Sub[S], noWild bool) []Sub[S] {
	if len(n.children) == 0 {
		return dst
	}
	if !noWild {
		if h := n.children["#"]; h != nil {
			dst = t.collect(h, dst)
		}
	}
	i := bytes.IndexByte(topic, '/')
	var level, rest []byte
	last := i < 0
	if last {
		level = topic
	} else {
		level, rest = topic[:i], topic[i+1:]
	}
	if c := n.children[string(level)]; c != nil {
		dst = t.step(c, rest, last, dst)
	}
	if !noWild {
		if c := n.children["+"]; c != nil {
			dst = t.step(c, rest, last, dst)
		}
	}
	return dst
}

func (t *Trie[S]) step(c *node[S], rest []byte, last bool, dst []Sub[S]) []Sub[S] {
	if last {
		dst = t.collect(c, dst)
		if h := c.children["#"]; h != nil { // "a/#" matches "a"
			dst = t.collect(h, dst)
		}
		return dst
	}
	return t.match(c, rest, dst, false)
}

func (t *Trie[S]) collect(n *node[S], dst []Sub[S]) []Sub[S] {
	dst = append(dst, n.subs...)
	for _, g := range n.shared {
		k := len(g.members)
		if k == 0 {
			continue
		}
		start := int(g.next.Add(1)-1) % k
		pick := start
		if t.Online != nil {
			for j := 0; j < k; j++ {
				if t.Online(g.members[(start+j)%k].S) {
					pick = (start + j) % k
					break
				}
			}
		}
		dst = append(dst, g.members[pick])
	}
	return dst
}

// Matches reports whether topic matches filter (no $share prefix), applying
// the $-topic rule. Used by the retained store and tests.
func Matches(filter string, topic []byte) bool {
	if len(topic) > 0 && topic[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fi := strings.IndexByte(filter, '/')
		fl := filter
		if fi >= 0 {
			fl = filter[:fi]
		}
		if fl == "#" {
			return true
		}
		ti := bytes.IndexByte(topic, '/')
		tl := topic
		if ti >= 0 {
			tl = topic[:ti]
		}
		if fl != "+" && fl != string(tl) {
			return false
		}
		if fi < 0 || ti < 0 {
			if fi < 0 && ti < 0 {
				return true
			}
			// topic exhausted: "a/#" matches "a"
			return ti < 0 && filter[fi+1:] == "#"
		}
		filter, topic = filter[fi+1:], topic[ti+1:]
	}
}
