package group

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"
)

// Error codes are Kafka's, since this coordinator serves the Kafka protocol.
const (
	ErrNone                      int16 = 0
	ErrCoordinatorNotAvailable   int16 = 15
	ErrIllegalGeneration         int16 = 22
	ErrInconsistentGroupProtocol int16 = 23
	ErrInvalidGroupID            int16 = 24
	ErrUnknownMemberID           int16 = 25
	ErrInvalidSessionTimeout     int16 = 26
	ErrRebalanceInProgress       int16 = 27
	ErrNonEmptyGroup             int16 = 68
	ErrGroupIDNotFound           int16 = 69
	ErrMemberIDRequired          int16 = 79
	ErrFencedInstanceID          int16 = 82
	ErrGroupSubscribedToTopic    int16 = 86
	ErrUnstableOffsetCommit      int16 = 88
	ErrGroupMaxSizeReached       int16 = 81
	ErrKafkaStorageError         int16 = 56
	ErrUnknownTopicOrPartition   int16 = 3
	ErrOffsetMetadataTooLarge    int16 = 12
	offsetMetadataBytesMax             = 4096
	groupMembersMax                    = 1000
	groupIDBytesMax                    = 255
	memberIDPrefixBytesMax             = 64
)

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("group: coordinator closed")

// State of a group.
type State int

// Group states.
const (
	Empty State = iota
	PreparingRebalance
	CompletingRebalance
	Stable
	Dead
)

func (s State) String() string {
	switch s {
	case Empty:
		return "Empty"
	case PreparingRebalance:
		return "PreparingRebalance"
	case CompletingRebalance:
		return "CompletingRebalance"
	case Stable:
		return "Stable"
	default:
		return "Dead"
	}
}

// Store is the durable key/value store the coordinator keeps offsets in; the
// engine's metadata catalog (engine.Meta) satisfies it.
type Store interface {
	Put(ns, key string, value []byte, done func(error))
	Delete(ns, key string, done func(error))
	Get(ns, key string) ([]byte, bool)
	Range(ns string, fn func(key string, value []byte) bool)
}

// Config tunes the coordinator. Zero values take Kafka's defaults.
type Config struct {
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms: how long the
	// first rebalance of an empty group waits for more members (default 3 s;
	// negative means none).
	InitialRebalanceDelay time.Duration
	SessionTimeoutMin     time.Duration // group.min.session.timeout.ms (6 s)
	SessionTimeoutMax     time.Duration // group.max.session.timeout.ms (30 min)
}

// Protocol is one (assignor name, metadata) pair offered by a member.
type Protocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is a JoinGroup.
type JoinRequest struct {
	Group            string
	MemberID         string
	InstanceID       *string
	ClientID         string
	ClientHost       string
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	ProtocolType     string
	Protocols        []Protocol
	// RequireKnownMemberID (JoinGroup v4+): a new member without an id first
	// gets MEMBER_ID_REQUIRED with its assigned id.
	RequireKnownMemberID bool
}

// Member is a member as seen by the leader in a JoinGroup response.
type Member struct {
	MemberID   string
	InstanceID *string
	Metadata   []byte
}

// JoinResult is a JoinGroup response.
type JoinResult struct {
	Err            int16
	Generation     int32
	ProtocolType   string
	Protocol       string
	Leader         string
	MemberID       string
	SkipAssignment bool
	Members        []Member // only for the leader
}

// SyncRequest is a SyncGroup.
type SyncRequest struct {
	Group        string
	MemberID     string
	InstanceID   *string
	Generation   int32
	ProtocolType *string
	Protocol     *string
	Assignments  map[string][]byte // leader only
}

// SyncResult is a SyncGroup response.
type SyncResult struct {
	Err          int16
	ProtocolType string
	Protocol     string
	Assignment   []byte
}

type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []Protocol
	assignment       []byte
	joinDone         func(JoinResult) // awaiting a JoinGroup response
	syncDone         func(SyncResult) // awaiting a SyncGroup response
	timer            *time.Timer
	seq              uint64 // bumps on every session refresh; stale timers do nothing
	joinedGen        bool   // rejoined during the current PreparingRebalance
}

// Group is one consumer group's membership state.
type Group struct {
	name         string
	state        State
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*member
	static       map[string]string // instance id → member id
	pending      map[string]*time.Timer
	joinTimer    *time.Timer
	rebalanceSeq uint64
	delayStart   time.Time
}

// Coordinator owns every group. Safe for concurrent use.
type Coordinator struct {
	mu      sync.Mutex
	cfg     Config
	store   Store
	log     *slog.Logger
	groups  map[string]*Group
	offsets map[string]map[string]map[int32]Offset
	closed  bool
}

// New loads committed offsets from store and returns a coordinator.
func New(store Store, cfg Config, log *slog.Logger) *Coordinator {
	if cfg.InitialRebalanceDelay == 0 {
		cfg.InitialRebalanceDelay = 3 * time.Second
	}
	if cfg.InitialRebalanceDelay < 0 {
		cfg.InitialRebalanceDelay = 0
	}
	if cfg.SessionTimeoutMin == 0 {
		cfg.SessionTimeoutMin = 6 * time.Second
	}
	if cfg.SessionTimeoutMax == 0 {
		cfg.SessionTimeoutMax = 30 * time.Minute
	}
	if log == nil {
		log = slog.Default()
	}
	c := &Coordinator{cfg: cfg, store: store, log: log, groups: map[string]*Group{},
		offsets: map[string]map[string]map[int32]Offset{}}
	c.loadOffsets()
	return c
}

// Close stops all timers; pending callbacks are answered with
// COORDINATOR_NOT_AVAILABLE.
func (c *Coordinator) Close() {
	var run []func()
	c.mu.Lock()
	c.closed = true
	for _, g := range c.groups {
		if g.joinTimer != nil {
			g.joinTimer.Stop()
		}
		for _, t := range g.pending {
			t.Stop()
		}
		for _, m := range g.members {
			if m.timer != nil {
				m.timer.Stop()
			}
			if f := m.joinDone; f != nil {
				m.joinDone = nil
				run = append(run, func() { f(JoinResult{Err: ErrCoordinatorNotAvailable, Generation: -1}) })
			}
			if f := m.syncDone; f != nil {
				m.syncDone = nil
				run = append(run, func() { f(SyncResult{Err: ErrCoordinatorNotAvailable}) })
			}
		}
	}
	c.mu.Unlock()
	for _, f := range run {
		f()
	}
}

func newMemberID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	if len(prefix) > memberIDPrefixBytesMax {
		prefix = prefix[:memberIDPrefixBytesMax]
	}
	return prefix + "-" + hex.EncodeToString(b[:4]) + "-" + hex.EncodeToString(b[4:10]) + "-" + hex.EncodeToString(b[10:])
}

func (c *Coordinator) group(name string, create bool) *Group {
	g := c.groups[name]
	if g == nil && create {
		g = &Group{name: name, members: map[string]*member{}, static: map[string]string{},
			pending: map[string]*time.Timer{}}
		c.groups[name] = g
	}
	return g
}

// Join handles a JoinGroup; done is called once with the result.
func (c *Coordinator) Join(req JoinRequest, done func(JoinResult)) {
	var run []func()
	c.mu.Lock()
	res, ok := c.join(req, done, &run)
	c.mu.Unlock()
	if ok {
		done(res)
	}
	for _, f := range run {
		f()
	}
}

func fail(err int16, memberID string) JoinResult {
	return JoinResult{Err: err, Generation: -1, MemberID: memberID}
}

// join returns (result, true) to answer at once, or (_, false) when done was
// parked on the member.
func (c *Coordinator) join(req JoinRequest, done func(JoinResult), run *[]func()) (JoinResult, bool) {
	if c.closed {
		return fail(ErrCoordinatorNotAvailable, req.MemberID), true
	}
	if req.Group == "" || len(req.Group) > groupIDBytesMax {
		return fail(ErrInvalidGroupID, req.MemberID), true
	}
	if req.SessionTimeout < c.cfg.SessionTimeoutMin || req.SessionTimeout > c.cfg.SessionTimeoutMax {
		return fail(ErrInvalidSessionTimeout, req.MemberID), true
	}
	if req.RebalanceTimeout <= 0 {
		req.RebalanceTimeout = req.SessionTimeout
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return fail(ErrInconsistentGroupProtocol, req.MemberID), true
	}
	g := c.group(req.Group, req.MemberID == "")
	if g == nil {
		return fail(ErrUnknownMemberID, req.MemberID), true
	}
	if g.state == Dead {
		return fail(ErrCoordinatorNotAvailable, req.MemberID), true
	}
	if len(g.members) > 0 && (g.protocolType != req.ProtocolType || !g.supports(req.Protocols)) {
		return fail(ErrInconsistentGroupProtocol, req.MemberID), true
	}
	if req.MemberID == "" {
		return c.joinNew(g, req, done, run)
	}
	// Known (or pending) member.
	if t, ok := g.pending[req.MemberID]; ok {
		t.Stop()
		delete(g.pending, req.MemberID)
		return c.addMember(g, req.MemberID, req, done, run), false
	}
	m := g.members[req.MemberID]
	if m == nil {
		if req.InstanceID != nil {
			if _, ok := g.static[*req.InstanceID]; ok {
				return fail(ErrFencedInstanceID, req.MemberID), true
			}
		}
		return fail(ErrUnknownMemberID, req.MemberID), true
	}
	if req.InstanceID != nil && (m.instanceID == nil || *m.instanceID != *req.InstanceID) {
		return fail(ErrFencedInstanceID, req.MemberID), true
	}
	c.refresh(g, m)
	switch g.state {
	case PreparingRebalance:
		c.updateMember(g, m, req, done, run)
		c.maybeCompleteJoin(g, run)
		return JoinResult{}, false
	case CompletingRebalance, Stable:
		if (g.state == CompletingRebalance || m.id != g.leader) && sameProtocols(m.protocols, req.Protocols) {
			// Nothing changed: answer with the current generation.
			return c.joinResult(g, m, false), true
		}
		c.updateMember(g, m, req, done, run)
		c.prepareRebalance(g, run)
		return JoinResult{}, false
	default: // Empty with a known member cannot happen
		return fail(ErrUnknownMemberID, req.MemberID), true
	}
}

func (c *Coordinator) joinNew(g *Group, req JoinRequest, done func(JoinResult), run *[]func()) (JoinResult, bool) {
	id := newMemberID(req.ClientID)
	if req.InstanceID != nil {
		if old, ok := g.static[*req.InstanceID]; ok {
			if om := g.members[old]; om != nil {
				return c.replaceStatic(g, om, id, req, done, run)
			}
		}
	} else if req.RequireKnownMemberID {
		if len(g.members)+len(g.pending) >= groupMembersMax {
			return fail(ErrGroupMaxSizeReached, ""), true
		}
		// KIP-394: hand out the id; the member rejoins with it.
		g.pending[id] = time.AfterFunc(req.SessionTimeout, func() {
			c.mu.Lock()
			delete(g.pending, id)
			c.mu.Unlock()
		})
		return fail(ErrMemberIDRequired, id), true
	}
	if len(g.members) >= groupMembersMax {
		return fail(ErrGroupMaxSizeReached, ""), true
	}
	return c.addMember(g, id, req, done, run), false
}

// replaceStatic gives a restarted static member a new member id in place of
// the old one, fencing the old id.
func (c *Coordinator) replaceStatic(g *Group, om *member, id string, req JoinRequest, done func(JoinResult), run *[]func()) (JoinResult, bool) {
	delete(g.members, om.id)
	if om.timer != nil {
		om.timer.Stop()
	}
	if f := om.joinDone; f != nil {
		*run = append(*run, func() { f(fail(ErrFencedInstanceID, om.id)) })
	}
	if f := om.syncDone; f != nil {
		*run = append(*run, func() { f(SyncResult{Err: ErrFencedInstanceID}) })
	}
	m := &member{id: id, instanceID: req.InstanceID, assignment: om.assignment, protocols: om.protocols,
		protocolType: om.protocolType, joinedGen: om.joinedGen}
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	g.members[id] = m
	g.static[*req.InstanceID] = id
	if g.leader == om.id {
		g.leader = id
	}
	c.refresh(g, m)
	switch g.state {
	case Stable:
		if sameProtocols(om.protocols, req.Protocols) {
			res := c.joinResult(g, m, true)
			return res, true
		}
		c.updateMember(g, m, req, done, run)
		c.prepareRebalance(g, run)
		return JoinResult{}, false
	case CompletingRebalance:
		c.updateMember(g, m, req, done, run)
		c.prepareRebalance(g, run)
		return JoinResult{}, false
	default:
		c.updateMember(g, m, req, done, run)
		c.maybeCompleteJoin(g, run)
		return JoinResult{}, false
	}
}

func (c *Coordinator) addMember(g *Group, id string, req JoinRequest, done func(JoinResult), run *[]func()) JoinResult {
	m := &member{id: id, instanceID: req.InstanceID}
	g.members[id] = m
	if req.InstanceID != nil {
		g.static[*req.InstanceID] = id
	}
	if len(g.members) == 1 {
		g.protocolType = req.ProtocolType
	}
	c.updateMember(g, m, req, done, run)
	c.refresh(g, m)
	if g.state == PreparingRebalance {
		c.maybeCompleteJoin(g, run)
	} else {
		c.prepareRebalance(g, run)
	}
	return JoinResult{}
}

func (c *Coordinator) updateMember(g *Group, m *member, req JoinRequest, done func(JoinResult), run *[]func()) {
	m.clientID, m.clientHost = req.ClientID, req.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = req.SessionTimeout, req.RebalanceTimeout
	m.protocolType = req.ProtocolType
	m.protocols = cloneProtocols(req.Protocols)
	if m.joinDone != nil && done != nil {
		// A duplicate join replaces the earlier wait (Kafka answers the old one
		// with UNKNOWN_MEMBER_ID); here the old connection gets a retriable error.
		old, id := m.joinDone, m.id
		*run = append(*run, func() { old(fail(ErrRebalanceInProgress, id)) })
	}
	m.joinDone = done
	m.joinedGen = true
}

func cloneProtocols(ps []Protocol) []Protocol {
	out := make([]Protocol, len(ps))
	for i, p := range ps {
		out[i] = Protocol{Name: p.Name, Metadata: slices.Clone(p.Metadata)}
	}
	return out
}

func sameProtocols(a, b []Protocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || string(a[i].Metadata) != string(b[i].Metadata) {
			return false
		}
	}
	return true
}

// supports reports whether ps shares a protocol name with every member.
func (g *Group) supports(ps []Protocol) bool {
	for _, p := range ps {
		ok := true
		for _, m := range g.members {
			if !hasProtocol(m.protocols, p.Name) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func hasProtocol(ps []Protocol, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

// refresh restarts a member's session timer.
func (c *Coordinator) refresh(g *Group, m *member) {
	m.seq++
	seq := m.seq
	if m.timer != nil {
		m.timer.Stop()
	}
	d := m.sessionTimeout
	if d <= 0 {
		d = c.cfg.SessionTimeoutMin
	}
	m.timer = time.AfterFunc(d, func() { c.expire(g, m, seq) })
}

func (c *Coordinator) expire(g *Group, m *member, seq uint64) {
	var run []func()
	c.mu.Lock()
	if c.closed || m.seq != seq || g.members[m.id] != m {
		c.mu.Unlock()
		return
	}
	if m.joinDone != nil || m.syncDone != nil {
		// Waiting on the coordinator: not the member's fault.
		c.refresh(g, m)
		c.mu.Unlock()
		return
	}
	c.log.Info("kafka group member session expired", "group", g.name, "member", m.id)
	c.removeMember(g, m, &run)
	c.mu.Unlock()
	for _, f := range run {
		f()
	}
}

func (c *Coordinator) removeMember(g *Group, m *member, run *[]func()) {
	delete(g.members, m.id)
	if m.timer != nil {
		m.timer.Stop()
	}
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if f := m.joinDone; f != nil {
		m.joinDone = nil
		*run = append(*run, func() { f(fail(ErrUnknownMemberID, m.id)) })
	}
	if f := m.syncDone; f != nil {
		m.syncDone = nil
		*run = append(*run, func() { f(SyncResult{Err: ErrUnknownMemberID}) })
	}
	if g.leader == m.id {
		g.leader = ""
	}
	switch g.state {
	case Stable, CompletingRebalance:
		c.prepareRebalance(g, run)
	case PreparingRebalance:
		c.maybeCompleteJoin(g, run)
	}
}

// prepareRebalance moves g to PreparingRebalance and arms the join timer.
func (c *Coordinator) prepareRebalance(g *Group, run *[]func()) {
	// Members waiting on a SyncGroup of the old generation must rejoin.
	for _, m := range g.members {
		if f := m.syncDone; f != nil {
			m.syncDone = nil
			*run = append(*run, func() { f(SyncResult{Err: ErrRebalanceInProgress}) })
		}
		if m.joinDone == nil {
			m.joinedGen = false
		}
	}
	wasEmpty := g.state == Empty
	g.state = PreparingRebalance
	g.rebalanceSeq++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
	}
	seq := g.rebalanceSeq
	d := g.rebalanceTimeout()
	if wasEmpty && c.cfg.InitialRebalanceDelay > 0 {
		// group.initial.rebalance.delay.ms: give other members a moment.
		g.delayStart = time.Now()
		d = min(c.cfg.InitialRebalanceDelay, d)
		g.joinTimer = time.AfterFunc(d, func() { c.joinTimeout(g, seq) })
		return
	}
	g.delayStart = time.Time{}
	g.joinTimer = time.AfterFunc(d, func() { c.joinTimeout(g, seq) })
	c.maybeCompleteJoin(g, run)
}

func (g *Group) rebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	if d <= 0 {
		d = 5 * time.Second
	}
	return d
}

func (c *Coordinator) joinTimeout(g *Group, seq uint64) {
	var run []func()
	c.mu.Lock()
	if c.closed || g.rebalanceSeq != seq || g.state != PreparingRebalance {
		c.mu.Unlock()
		return
	}
	g.delayStart = time.Time{}
	// Members that did not rejoin in time are removed.
	for _, m := range g.members {
		if !m.joinedGen {
			c.log.Info("kafka group member did not rejoin in time", "group", g.name, "member", m.id)
			delete(g.members, m.id)
			if m.timer != nil {
				m.timer.Stop()
			}
			if m.instanceID != nil && g.static[*m.instanceID] == m.id {
				delete(g.static, *m.instanceID)
			}
			if g.leader == m.id {
				g.leader = ""
			}
		}
	}
	c.completeJoin(g, &run)
	c.mu.Unlock()
	for _, f := range run {
		f()
	}
}

func (c *Coordinator) maybeCompleteJoin(g *Group, run *[]func()) {
	if g.state != PreparingRebalance || !g.delayStart.IsZero() {
		return
	}
	for _, m := range g.members {
		if !m.joinedGen {
			return
		}
	}
	if len(g.pending) > 0 && len(g.members) == 0 {
		return
	}
	if g.joinTimer != nil {
		g.joinTimer.Stop()
	}
	c.completeJoin(g, run)
}

func (c *Coordinator) completeJoin(g *Group, run *[]func()) {
	g.generation++
	if len(g.members) == 0 {
		g.state = Empty
		g.protocol, g.leader = "", ""
		return
	}
	g.protocol = g.selectProtocol()
	if _, ok := g.members[g.leader]; !ok {
		ids := make([]string, 0, len(g.members))
		for id := range g.members {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		g.leader = ids[0]
		for _, id := range ids { // prefer a member that is waiting
			if g.members[id].joinDone != nil {
				g.leader = id
				break
			}
		}
	}
	g.state = CompletingRebalance
	for _, m := range g.members {
		m.joinedGen = false
		m.assignment = nil
		if f := m.joinDone; f != nil {
			m.joinDone = nil
			res := c.joinResult(g, m, false)
			*run = append(*run, func() { f(res) })
		}
		c.refresh(g, m)
	}
}

// selectProtocol picks the protocol all members support with the most
// first-preference votes (ties: the earliest in the leader's order).
func (g *Group) selectProtocol() string {
	var cands []string
	var any *member
	for _, m := range g.members {
		if any == nil || m.id == g.leader {
			any = m
		}
	}
	for _, p := range any.protocols {
		ok := true
		for _, m := range g.members {
			if !hasProtocol(m.protocols, p.Name) {
				ok = false
				break
			}
		}
		if ok {
			cands = append(cands, p.Name)
		}
	}
	if len(cands) == 0 {
		return any.protocols[0].Name
	}
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(cands, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := cands[0]
	for _, n := range cands {
		if votes[n] > votes[best] {
			best = n
		}
	}
	return best
}

func (c *Coordinator) joinResult(g *Group, m *member, staticRejoin bool) JoinResult {
	res := JoinResult{Generation: g.generation, ProtocolType: g.protocolType, Protocol: g.protocol,
		Leader: g.leader, MemberID: m.id}
	if m.id == g.leader {
		if staticRejoin {
			res.SkipAssignment = true
		}
		ids := make([]string, 0, len(g.members))
		for id := range g.members {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			om := g.members[id]
			var md []byte
			for _, p := range om.protocols {
				if p.Name == g.protocol {
					md = p.Metadata
				}
			}
			res.Members = append(res.Members, Member{MemberID: id, InstanceID: om.instanceID, Metadata: md})
		}
	}
	return res
}

// Sync handles a SyncGroup; done is called once.
func (c *Coordinator) Sync(req SyncRequest, done func(SyncResult)) {
	var run []func()
	c.mu.Lock()
	res, ok := c.sync(req, done, &run)
	c.mu.Unlock()
	if ok {
		done(res)
	}
	for _, f := range run {
		f()
	}
}

func (c *Coordinator) sync(req SyncRequest, done func(SyncResult), run *[]func()) (SyncResult, bool) {
	if c.closed {
		return SyncResult{Err: ErrCoordinatorNotAvailable}, true
	}
	g := c.groups[req.Group]
	if g == nil {
		return SyncResult{Err: ErrUnknownMemberID}, true
	}
	m := g.members[req.MemberID]
	if m == nil {
		if req.InstanceID != nil && g.static[*req.InstanceID] != "" {
			return SyncResult{Err: ErrFencedInstanceID}, true
		}
		return SyncResult{Err: ErrUnknownMemberID}, true
	}
	if req.InstanceID != nil && (m.instanceID == nil || *m.instanceID != *req.InstanceID) {
		return SyncResult{Err: ErrFencedInstanceID}, true
	}
	if req.Generation != g.generation {
		return SyncResult{Err: ErrIllegalGeneration}, true
	}
	if (req.ProtocolType != nil && *req.ProtocolType != g.protocolType) || (req.Protocol != nil && *req.Protocol != g.protocol) {
		return SyncResult{Err: ErrInconsistentGroupProtocol}, true
	}
	c.refresh(g, m)
	switch g.state {
	case PreparingRebalance:
		return SyncResult{Err: ErrRebalanceInProgress}, true
	case Stable:
		return SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: m.assignment}, true
	case CompletingRebalance:
	default:
		return SyncResult{Err: ErrUnknownMemberID}, true
	}
	if m.syncDone != nil {
		old := m.syncDone
		*run = append(*run, func() { old(SyncResult{Err: ErrRebalanceInProgress}) })
	}
	m.syncDone = done
	if m.id == g.leader {
		for id, om := range g.members {
			om.assignment = slices.Clone(req.Assignments[id])
		}
		g.state = Stable
		for _, om := range g.members {
			if f := om.syncDone; f != nil {
				om.syncDone = nil
				res := SyncResult{ProtocolType: g.protocolType, Protocol: g.protocol, Assignment: om.assignment}
				*run = append(*run, func() { f(res) })
			}
		}
	}
	return SyncResult{}, false
}

// Heartbeat handles a Heartbeat and returns its error code.
func (c *Coordinator) Heartbeat(groupID, memberID string, instanceID *string, generation int32) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrCoordinatorNotAvailable
	}
	g := c.groups[groupID]
	if g == nil {
		return ErrUnknownMemberID
	}
	m := g.members[memberID]
	if m == nil {
		if instanceID != nil && g.static[*instanceID] != "" {
			return ErrFencedInstanceID
		}
		return ErrUnknownMemberID
	}
	if instanceID != nil && (m.instanceID == nil || *m.instanceID != *instanceID) {
		return ErrFencedInstanceID
	}
	switch g.state {
	case PreparingRebalance:
		c.refresh(g, m)
		return ErrRebalanceInProgress
	case CompletingRebalance, Stable:
		if generation != g.generation {
			return ErrIllegalGeneration
		}
		c.refresh(g, m)
		return ErrNone
	default:
		return ErrUnknownMemberID
	}
}

// LeaveMember identifies a member in LeaveGroup v3+.
type LeaveMember struct {
	MemberID   string
	InstanceID *string
}

// Leave removes members; it returns the group-level error and one per member.
func (c *Coordinator) Leave(groupID string, members []LeaveMember) (int16, []int16) {
	var run []func()
	c.mu.Lock()
	errs := make([]int16, len(members))
	g := c.groups[groupID]
	if c.closed {
		c.mu.Unlock()
		return ErrCoordinatorNotAvailable, errs
	}
	if g == nil {
		c.mu.Unlock()
		return ErrUnknownMemberID, errs
	}
	for i, lm := range members {
		id := lm.MemberID
		if lm.InstanceID != nil {
			sid, ok := g.static[*lm.InstanceID]
			if !ok {
				errs[i] = ErrUnknownMemberID
				continue
			}
			if id != "" && id != sid {
				errs[i] = ErrFencedInstanceID
				continue
			}
			id = sid
		}
		if t, ok := g.pending[id]; ok {
			t.Stop()
			delete(g.pending, id)
			continue
		}
		m := g.members[id]
		if m == nil {
			errs[i] = ErrUnknownMemberID
			continue
		}
		c.log.Info("kafka group member left", "group", groupID, "member", id)
		c.removeMember(g, m, &run)
	}
	c.mu.Unlock()
	for _, f := range run {
		f()
	}
	return ErrNone, errs
}

// Summary describes a group for ListGroups.
type Summary struct {
	Name, ProtocolType string
	State              State
}

// List returns every group (including groups that only have offsets).
func (c *Coordinator) List() []Summary {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Summary
	seen := map[string]bool{}
	for name, g := range c.groups {
		seen[name] = true
		out = append(out, Summary{Name: name, ProtocolType: g.protocolType, State: g.state})
	}
	for name := range c.offsets {
		if !seen[name] {
			out = append(out, Summary{Name: name, ProtocolType: "consumer", State: Empty})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// MemberInfo describes a member for DescribeGroups.
type MemberInfo struct {
	MemberID, ClientID, ClientHost string
	InstanceID                     *string
	Metadata, Assignment           []byte
}

// Description is a DescribeGroups answer for one group.
type Description struct {
	Err                    int16
	State                  State
	ProtocolType, Protocol string
	Members                []MemberInfo
}

// Describe returns the group's state; a group that does not exist is
// described as Dead, as Kafka does.
func (c *Coordinator) Describe(groupID string) Description {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[groupID]
	if g == nil {
		if _, ok := c.offsets[groupID]; ok {
			return Description{State: Empty, ProtocolType: "consumer"}
		}
		return Description{State: Dead}
	}
	d := Description{State: g.state, ProtocolType: g.protocolType, Protocol: g.protocol}
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		m := g.members[id]
		mi := MemberInfo{MemberID: id, ClientID: m.clientID, ClientHost: m.clientHost, InstanceID: m.instanceID,
			Assignment: m.assignment}
		for _, p := range m.protocols {
			if p.Name == g.protocol {
				mi.Metadata = p.Metadata
			}
		}
		d.Members = append(d.Members, mi)
	}
	return d
}

// Delete removes an empty group and its offsets (DeleteGroups).
func (c *Coordinator) Delete(groupID string, done func(int16)) {
	c.mu.Lock()
	g := c.groups[groupID]
	_, hasOffsets := c.offsets[groupID]
	switch {
	case c.closed:
		c.mu.Unlock()
		done(ErrCoordinatorNotAvailable)
		return
	case g == nil && !hasOffsets:
		c.mu.Unlock()
		done(ErrGroupIDNotFound)
		return
	case g != nil && g.state != Empty && g.state != Dead:
		c.mu.Unlock()
		done(ErrNonEmptyGroup)
		return
	}
	delete(c.groups, groupID)
	keys := c.dropOffsetsLocked(groupID, nil)
	c.mu.Unlock()
	c.deleteKeys(keys, func(err error) {
		if err != nil {
			done(ErrKafkaStorageError)
			return
		}
		done(ErrNone)
	})
}

// Subscribed returns each member's metadata for the group's protocol, so the
// caller (which understands the consumer protocol) can tell whether the group
// consumes a topic. ok is false when the group has no members.
func (c *Coordinator) Subscribed(groupID string) (protocolType string, metadata [][]byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[groupID]
	if g == nil || len(g.members) == 0 {
		return "", nil, false
	}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if p.Name == g.protocol || g.protocol == "" {
				metadata = append(metadata, p.Metadata)
				break
			}
		}
	}
	return g.protocolType, metadata, true
}

// Exists reports whether the group is known (members or offsets).
func (c *Coordinator) Exists(groupID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, a := c.groups[groupID]
	_, b := c.offsets[groupID]
	return a || b
}
