package rocketmq

// HEART_BEAT (34), UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38),
// NOTIFY_CONSUMER_IDS_CHANGED (40, broker → client), LOCK_BATCH_MQ (41),
// UNLOCK_BATCH_MQ (42). The broker remembers each consumer group's members
// and subscriptions from heartbeats (the push consumer does not resend its
// subscription with each pull) and tells members when membership changes.

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"
)

// subscription is one topic subscription of a consumer group.
type subscription struct {
	topic string
	all   bool
	tags  []string
	codes []int32
}

// newSubscription parses a TAG expression ("*", "A || B").
func newSubscription(topic, expr string) *subscription {
	sub := &subscription{topic: topic}
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "*" {
		sub.all = true
		return sub
	}
	for _, t := range strings.Split(expr, "||") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		sub.tags = append(sub.tags, t)
		sub.codes = append(sub.codes, tagHash(t))
	}
	if len(sub.tags) == 0 {
		sub.all = true
	}
	return sub
}

// tagHash is Java's String.hashCode over the tag's bytes.
func tagHash(t string) int32 {
	var h int32
	for i := 0; i < len(t); i++ {
		h = 31*h + int32(t[i])
	}
	return h
}

// matches is the broker-side filter: by tag hash code, as the Java broker's
// consume-queue filter (the client filters again by tag string).
func (sub *subscription) matches(tags []byte) bool {
	if sub == nil || sub.all {
		return true
	}
	h := int32(0)
	for _, c := range tags {
		h = 31*h + int32(c)
	}
	for _, c := range sub.codes {
		if c == h {
			return true
		}
	}
	return false
}

type client struct {
	id        string
	cn        *conn
	last      time.Time
	consumers map[string]bool
	producers map[string]bool
}

type cgroup struct {
	name    string
	model   string
	members map[string]*client
	subs    map[string]*subscription
}

type registry struct {
	mu        sync.Mutex
	clients   map[string]*client
	groups    map[string]*cgroup
	producers map[string]map[string]*client
}

func (r *registry) init() {
	r.clients = map[string]*client{}
	r.groups = map[string]*cgroup{}
	r.producers = map[string]map[string]*client{}
}

type heartbeatData struct {
	ClientID        string `json:"clientID"`
	ProducerDataSet []struct {
		GroupName string `json:"groupName"`
	} `json:"producerDataSet"`
	ConsumerDataSet []struct {
		GroupName           string `json:"groupName"`
		ConsumeType         string `json:"consumeType"`
		MessageModel        string `json:"messageModel"`
		SubscriptionDataSet []struct {
			Topic          string `json:"topic"`
			SubString      string `json:"subString"`
			ExpressionType string `json:"expressionType"`
		} `json:"subscriptionDataSet"`
	} `json:"consumerDataSet"`
}

func (s *Server) heartbeat(cn *conn, cmd *Command) *Out {
	var hb heartbeatData
	if err := json.Unmarshal(cmd.Body, &hb); err != nil || hb.ClientID == "" {
		return respond(cmd, respSystemError, "bad heartbeat body")
	}
	var notify []*cgroup
	r := &s.reg
	r.mu.Lock()
	c := r.clients[hb.ClientID]
	if c == nil {
		c = &client{id: hb.ClientID, consumers: map[string]bool{}, producers: map[string]bool{}}
		r.clients[hb.ClientID] = c
	}
	c.cn = cn
	c.last = time.Now()
	for _, p := range hb.ProducerDataSet {
		if p.GroupName == "" {
			continue
		}
		c.producers[p.GroupName] = true
		m := r.producers[p.GroupName]
		if m == nil {
			m = map[string]*client{}
			r.producers[p.GroupName] = m
		}
		m[c.id] = c
	}
	for _, cd := range hb.ConsumerDataSet {
		if cd.GroupName == "" {
			continue
		}
		g := r.groups[cd.GroupName]
		if g == nil {
			g = &cgroup{name: cd.GroupName, members: map[string]*client{}, subs: map[string]*subscription{}}
			r.groups[cd.GroupName] = g
		}
		g.model = cd.MessageModel
		if g.members[c.id] == nil {
			g.members[c.id] = c
			notify = append(notify, g)
		}
		c.consumers[cd.GroupName] = true
		for _, sd := range cd.SubscriptionDataSet {
			if sd.ExpressionType != "" && sd.ExpressionType != "TAG" {
				continue // SQL92 filters are not supported: everything is delivered
			}
			g.subs[sd.Topic] = newSubscription(sd.Topic, sd.SubString)
		}
	}
	targets := r.membersOf(notify)
	r.mu.Unlock()
	s.notifyGroups(targets)
	return respond(cmd, respSuccess, "")
}

type groupMembers struct {
	group string
	conns []*conn
}

// membersOf lists the connections of each group's members (r.mu held).
func (r *registry) membersOf(gs []*cgroup) []groupMembers {
	var out []groupMembers
	for _, g := range gs {
		gm := groupMembers{group: g.name}
		for _, m := range g.members {
			gm.conns = append(gm.conns, m.cn)
		}
		out = append(out, gm)
	}
	return out
}

func (s *Server) notifyGroups(gms []groupMembers) {
	for _, gm := range gms {
		for _, cn := range gm.conns {
			cn.send(codeNotifyConsumerIDs, []Field{{"consumerGroup", gm.group}}, nil)
		}
	}
}

// removeClient drops c from every group (r.mu held) and returns the groups
// whose membership changed.
func (r *registry) removeClient(c *client) []*cgroup {
	var changed []*cgroup
	delete(r.clients, c.id)
	for g := range c.consumers {
		if cg := r.groups[g]; cg != nil && cg.members[c.id] == c {
			delete(cg.members, c.id)
			if len(cg.members) == 0 {
				delete(r.groups, g)
			} else {
				changed = append(changed, cg)
			}
		}
	}
	for g := range c.producers {
		if m := r.producers[g]; m != nil && m[c.id] == c {
			delete(m, c.id)
			if len(m) == 0 {
				delete(r.producers, g)
			}
		}
	}
	return changed
}

func (r *registry) dropConn(s *Server, cn *conn) {
	r.mu.Lock()
	var changed []*cgroup
	var ids []string
	for _, c := range r.clients {
		if c.cn == cn {
			changed = append(changed, r.removeClient(c)...)
			ids = append(ids, c.id)
		}
	}
	targets := r.membersOf(changed)
	r.mu.Unlock()
	for _, id := range ids {
		s.locks.releaseClient(id)
	}
	s.notifyGroups(targets)
}

func (r *registry) expire(s *Server, before time.Time) {
	r.mu.Lock()
	var changed []*cgroup
	for _, c := range r.clients {
		if c.last.Before(before) {
			s.log.Info("client expired", "client", c.id)
			changed = append(changed, r.removeClient(c)...)
		}
	}
	targets := r.membersOf(changed)
	r.mu.Unlock()
	s.notifyGroups(targets)
}

func (s *Server) unregister(cn *conn, cmd *Command) *Out {
	id := cmd.Str("clientID")
	r := &s.reg
	r.mu.Lock()
	var changed []*cgroup
	if c := r.clients[id]; c != nil {
		if g := cmd.Str("producerGroup"); g != "" {
			delete(c.producers, g)
			if m := r.producers[g]; m != nil {
				delete(m, id)
			}
		}
		if g := cmd.Str("consumerGroup"); g != "" {
			delete(c.consumers, g)
			if cg := r.groups[g]; cg != nil && cg.members[id] != nil {
				delete(cg.members, id)
				if len(cg.members) == 0 {
					delete(r.groups, g)
				} else {
					changed = append(changed, cg)
				}
			}
		}
		if len(c.producers) == 0 && len(c.consumers) == 0 {
			delete(r.clients, id)
		}
	}
	targets := r.membersOf(changed)
	r.mu.Unlock()
	s.notifyGroups(targets)
	return respond(cmd, respSuccess, "")
}

func (s *Server) consumerList(cmd *Command) *Out {
	group := cmd.Str("consumerGroup")
	r := &s.reg
	r.mu.Lock()
	var ids []string
	if g := r.groups[group]; g != nil {
		for id := range g.members {
			ids = append(ids, id)
		}
	}
	r.mu.Unlock()
	if len(ids) == 0 {
		return respond(cmd, respSystemError, "no consumer for this group, "+group)
	}
	sort.Strings(ids)
	b := []byte(`{"consumerIdList":[`)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, id)
	}
	out := respond(cmd, respSuccess, "")
	out.Body = append(b, "]}"...)
	return out
}

// subscriptionOf returns the group's subscription to topic from heartbeats.
func (s *Server) subscriptionOf(group, topic string) *subscription {
	r := &s.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.groups[group]; g != nil {
		return g.subs[topic]
	}
	return nil
}

// producerConn returns a live connection of a producer in group.
func (s *Server) producerConn(group string) *conn {
	r := &s.reg
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.producers[group] {
		return c.cn
	}
	return nil
}

// --- queue locks for orderly consumers ---

type lockKey struct {
	group, topic string
	queue        int
}

type lockEntry struct {
	client string
	expiry time.Time
}

type lockTable struct {
	mu sync.Mutex
	m  map[lockKey]lockEntry
}

func (t *lockTable) init() { t.m = map[lockKey]lockEntry{} }

func (t *lockTable) expire(now time.Time) {
	t.mu.Lock()
	for k, v := range t.m {
		if now.After(v.expiry) {
			delete(t.m, k)
		}
	}
	t.mu.Unlock()
}

func (t *lockTable) releaseClient(id string) {
	t.mu.Lock()
	for k, v := range t.m {
		if v.client == id {
			delete(t.m, k)
		}
	}
	t.mu.Unlock()
}

type mqJSON struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int    `json:"queueId"`
}

type lockBody struct {
	ConsumerGroup string   `json:"consumerGroup"`
	ClientID      string   `json:"clientId"`
	MQSet         []mqJSON `json:"mqSet"`
}

func (s *Server) lockBatch(cmd *Command) *Out {
	var req lockBody
	if err := json.Unmarshal(cmd.Body, &req); err != nil {
		return respond(cmd, respSystemError, "bad lock body")
	}
	now := time.Now()
	ok := make([]mqJSON, 0, len(req.MQSet))
	t := &s.locks
	t.mu.Lock()
	for _, mq := range req.MQSet {
		k := lockKey{req.ConsumerGroup, mq.Topic, mq.QueueID}
		e, held := t.m[k]
		if !held || e.client == req.ClientID || now.After(e.expiry) {
			t.m[k] = lockEntry{client: req.ClientID, expiry: now.Add(s.cfg.LockExpiry)}
			ok = append(ok, mq)
		}
	}
	t.mu.Unlock()
	body, _ := json.Marshal(struct {
		LockOKMQSet []mqJSON `json:"lockOKMQSet"`
	}{ok})
	out := respond(cmd, respSuccess, "")
	out.Body = body
	return out
}

func (s *Server) unlockBatch(cmd *Command) *Out {
	var req lockBody
	if err := json.Unmarshal(cmd.Body, &req); err != nil {
		return respond(cmd, respSystemError, "bad unlock body")
	}
	t := &s.locks
	t.mu.Lock()
	for _, mq := range req.MQSet {
		k := lockKey{req.ConsumerGroup, mq.Topic, mq.QueueID}
		if e, held := t.m[k]; held && e.client == req.ClientID {
			delete(t.m, k)
		}
	}
	t.mu.Unlock()
	return respond(cmd, respSuccess, "")
}
