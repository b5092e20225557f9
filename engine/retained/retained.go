package retained

import (
	"strings"
	"sync"

	"quartet/engine/session"
)

// Namespace is the metadata namespace holding retained messages.
const Namespace = "mqtt.retained"

// Backend is the durable key-value catalog (engine.Meta satisfies it).
type Backend interface {
	Put(ns, key string, value []byte, done func(error))
	Delete(ns, key string, done func(error))
	Range(ns string, fn func(key string, value []byte) bool)
}

type node struct {
	parent   *node
	key      string
	children map[string]*node
	msg      *session.Message
}

// Store is safe for concurrent use.
type Store struct {
	mu    sync.RWMutex
	root  node
	count int
	be    Backend
}

// New returns a store persisting through be (nil: memory only).
func New(be Backend) *Store { return &Store{be: be} }

// Load replays the retained messages stored in the backend.
func (s *Store) Load() error {
	if s.be == nil {
		return nil
	}
	var err error
	s.be.Range(Namespace, func(key string, value []byte) bool {
		m, e := session.DecodeMessage(value)
		if e != nil {
			err = e
			return false
		}
		s.set(key, m)
		return true
	})
	return err
}

// Set stores m (taking one new reference) as topic's retained message, or
// clears it when m's payload is empty. done (may be nil) is called once the
// change is durable.
func (s *Store) Set(m *session.Message, done func(error)) {
	topic := string(m.Topic)
	if len(m.Payload) == 0 {
		s.set(topic, nil)
		if s.be != nil {
			s.be.Delete(Namespace, topic, done)
		} else if done != nil {
			done(nil)
		}
		return
	}
	m.Ref()
	s.set(topic, m)
	if s.be != nil {
		s.be.Put(Namespace, topic, session.AppendMessage(nil, m), done)
	} else if done != nil {
		done(nil)
	}
}

// SetVolatile stores m (one new reference) without persisting it ($SYS topics).
func (s *Store) SetVolatile(m *session.Message) {
	m.Ref()
	s.set(string(m.Topic), m)
}

func (s *Store) set(topic string, m *session.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &s.root
	t := topic
	for {
		i := strings.IndexByte(t, '/')
		level := t
		if i >= 0 {
			level = t[:i]
		}
		c := n.children[level]
		if c == nil {
			if m == nil {
				return
			}
			if n.children == nil {
				n.children = make(map[string]*node, 1)
			}
			c = &node{parent: n, key: level}
			n.children[level] = c
		}
		n = c
		if i < 0 {
			break
		}
		t = t[i+1:]
	}
	if n.msg != nil {
		n.msg.Release()
		s.count--
	}
	n.msg = m
	if m != nil {
		s.count++
		return
	}
	for n != &s.root && n.msg == nil && len(n.children) == 0 {
		p := n.parent
		delete(p.children, n.key)
		n = p
	}
}

// Len is the number of retained messages.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.count
}

// Match appends, with one new reference each, the retained messages whose
// topic matches filter ($-topics are not matched by a leading wildcard).
func (s *Store) Match(filter string, dst []*session.Message) []*session.Message {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.match(&s.root, filter, dst, true)
}

func (s *Store) match(n *node, filter string, dst []*session.Message, first bool) []*session.Message {
	i := strings.IndexByte(filter, '/')
	level, rest, last := filter, "", true
	if i >= 0 {
		level, rest, last = filter[:i], filter[i+1:], false
	}
	switch level {
	case "#":
		for k, c := range n.children {
			if first && strings.HasPrefix(k, "$") {
				continue
			}
			dst = s.all(c, dst)
		}
		if !first && n.msg != nil { // "a/#" matches "a"
			n.msg.Ref()
			dst = append(dst, n.msg)
		}
	case "+":
		for k, c := range n.children {
			if first && strings.HasPrefix(k, "$") {
				continue
			}
			dst = s.step(c, rest, last, dst)
		}
	default:
		if c := n.children[level]; c != nil {
			dst = s.step(c, rest, last, dst)
		}
	}
	return dst
}

func (s *Store) step(c *node, rest string, last bool, dst []*session.Message) []*session.Message {
	if last {
		if c.msg != nil {
			c.msg.Ref()
			dst = append(dst, c.msg)
		}
		return dst
	}
	return s.match(c, rest, dst, false)
}

func (s *Store) all(n *node, dst []*session.Message) []*session.Message {
	if n.msg != nil {
		n.msg.Ref()
		dst = append(dst, n.msg)
	}
	for _, c := range n.children {
		dst = s.all(c, dst)
	}
	return dst
}
