package group

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Put(ns, key string, value []byte, done func(error)) {
	s.mu.Lock()
	s.m[ns+"/"+key] = append([]byte(nil), value...)
	s.mu.Unlock()
	go done(nil)
}
func (s *memStore) Delete(ns, key string, done func(error)) {
	s.mu.Lock()
	delete(s.m, ns+"/"+key)
	s.mu.Unlock()
	go done(nil)
}
func (s *memStore) Get(ns, key string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[ns+"/"+key]
	return v, ok
}
func (s *memStore) Range(ns string, fn func(string, []byte) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.m {
		if len(k) > len(ns) && k[:len(ns)+1] == ns+"/" {
			if !fn(k[len(ns)+1:], v) {
				return
			}
		}
	}
}

func joinReq(member string) JoinRequest {
	return JoinRequest{Group: "g", MemberID: member, ClientID: "c", SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 20 * time.Second, ProtocolType: "consumer",
		Protocols: []Protocol{{Name: "range", Metadata: []byte("m-" + member)}}}
}

// joinAsync starts a join and returns a channel with its result.
func joinAsync(c *Coordinator, req JoinRequest) chan JoinResult {
	ch := make(chan JoinResult, 1)
	c.Join(req, func(r JoinResult) { ch <- r })
	return ch
}

func syncAsync(c *Coordinator, req SyncRequest) chan SyncResult {
	ch := make(chan SyncResult, 1)
	c.Sync(req, func(r SyncResult) { ch <- r })
	return ch
}

func TestGroupLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New(newMemStore(), Config{InitialRebalanceDelay: time.Second}, nil)
		defer c.Close()
		// KIP-394: first join gets MEMBER_ID_REQUIRED.
		r := <-joinAsync(c, JoinRequest{Group: "g", ClientID: "c", SessionTimeout: 10 * time.Second,
			ProtocolType: "consumer", Protocols: []Protocol{{Name: "range"}}, RequireKnownMemberID: true})
		if r.Err != ErrMemberIDRequired || r.MemberID == "" {
			t.Fatalf("want MEMBER_ID_REQUIRED, got %+v", r)
		}
		ids := []string{r.MemberID}
		chs := []chan JoinResult{joinAsync(c, joinReq(r.MemberID))}
		for range 2 {
			chs = append(chs, joinAsync(c, joinReq("")))
		}
		var res []JoinResult
		for _, ch := range chs {
			res = append(res, <-ch)
		}
		ids = ids[:0]
		leader := res[0].Leader
		for _, r := range res {
			if r.Err != 0 || r.Generation != 1 || r.Leader != leader || r.Protocol != "range" {
				t.Fatalf("join: %+v", r)
			}
			ids = append(ids, r.MemberID)
		}
		var leaderRes JoinResult
		for _, r := range res {
			if r.MemberID == leader {
				leaderRes = r
			}
		}
		if len(leaderRes.Members) != 3 {
			t.Fatalf("leader sees %d members", len(leaderRes.Members))
		}
		// Followers sync first and wait; the leader's sync releases them.
		var syncs []chan SyncResult
		asg := map[string][]byte{}
		for _, id := range ids {
			asg[id] = []byte("a-" + id)
			if id != leader {
				syncs = append(syncs, syncAsync(c, SyncRequest{Group: "g", MemberID: id, Generation: 1}))
			}
		}
		synctest.Wait()
		for _, ch := range syncs {
			select {
			case <-ch:
				t.Fatal("follower answered before leader synced")
			default:
			}
		}
		if s := <-syncAsync(c, SyncRequest{Group: "g", MemberID: leader, Generation: 1, Assignments: asg}); s.Err != 0 || string(s.Assignment) != "a-"+leader {
			t.Fatalf("leader sync %+v", s)
		}
		for _, ch := range syncs {
			if s := <-ch; s.Err != 0 || len(s.Assignment) == 0 {
				t.Fatalf("follower sync %+v", s)
			}
		}
		if d := c.Describe("g"); d.State != Stable || len(d.Members) != 3 {
			t.Fatalf("describe %+v", d)
		}
		// Heartbeats keep everyone alive past the session timeout.
		for range 3 {
			time.Sleep(5 * time.Second)
			for _, id := range ids {
				if e := c.Heartbeat("g", id, nil, 1); e != 0 {
					t.Fatalf("heartbeat %d", e)
				}
			}
		}
		// One member stops heartbeating: after its session it is expired and
		// the others see REBALANCE_IN_PROGRESS.
		gone := ids[2]
		for range 3 {
			time.Sleep(4 * time.Second)
			for _, id := range ids[:2] {
				c.Heartbeat("g", id, nil, 1)
			}
		}
		if e := c.Heartbeat("g", ids[0], nil, 1); e != ErrRebalanceInProgress {
			t.Fatalf("want rebalance, got %d", e)
		}
		if e := c.Heartbeat("g", gone, nil, 1); e != ErrUnknownMemberID {
			t.Fatalf("expired member heartbeat: %d", e)
		}
		a, b := joinAsync(c, joinReq(ids[0])), joinAsync(c, joinReq(ids[1]))
		ra, rb := <-a, <-b
		if ra.Generation != 2 || rb.Generation != 2 || ra.Err != 0 {
			t.Fatalf("rejoin %+v %+v", ra, rb)
		}
		// Leave: the remaining member rebalances alone.
		if e, _ := c.Leave("g", []LeaveMember{{MemberID: ids[1]}}); e != 0 {
			t.Fatal(e)
		}
		if r := <-joinAsync(c, joinReq(ids[0])); r.Generation != 3 || r.Leader != ids[0] || len(r.Members) != 1 {
			t.Fatalf("after leave %+v", r)
		}
		if e, _ := c.Leave("g", []LeaveMember{{MemberID: ids[0]}}); e != 0 {
			t.Fatal(e)
		}
		if d := c.Describe("g"); d.State != Empty {
			t.Fatalf("want empty, %v", d.State)
		}
	})
}

func TestStaticMemberRejoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := New(nil, Config{InitialRebalanceDelay: -1}, nil)
		defer c.Close()
		inst := "i1"
		req := joinReq("")
		req.InstanceID = &inst
		r := <-joinAsync(c, req)
		if r.Err != 0 || r.Leader != r.MemberID {
			t.Fatalf("%+v", r)
		}
		s := <-syncAsync(c, SyncRequest{Group: "g", MemberID: r.MemberID, Generation: r.Generation,
			Assignments: map[string][]byte{r.MemberID: []byte("x")}})
		if s.Err != 0 {
			t.Fatal(s.Err)
		}
		// Restarted static member: new id, same generation, no rebalance.
		r2 := <-joinAsync(c, req)
		if r2.Err != 0 || r2.MemberID == r.MemberID || r2.Generation != r.Generation || !r2.SkipAssignment {
			t.Fatalf("static rejoin %+v", r2)
		}
		if e := c.Heartbeat("g", r.MemberID, &inst, r.Generation); e != ErrFencedInstanceID {
			t.Fatalf("old id should be fenced, got %d", e)
		}
		s2 := <-syncAsync(c, SyncRequest{Group: "g", MemberID: r2.MemberID, Generation: r2.Generation})
		if string(s2.Assignment) != "x" {
			t.Fatalf("assignment lost: %+v", s2)
		}
	})
}

func TestOffsetsPersist(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := newMemStore()
		c := New(st, Config{}, nil)
		done := make(chan []int16, 1)
		c.Commit(CommitRequest{Group: "g", Generation: -1, Offsets: []OffsetCommit{
			{TopicPartition{"t", 0}, Offset{Offset: 42, LeaderEpoch: 1, Metadata: "md"}},
			{TopicPartition{"t", 1}, Offset{Offset: 7}},
		}}, func(e []int16) { done <- e })
		if e := <-done; e[0] != 0 || e[1] != 0 {
			t.Fatal(e)
		}
		c.Close()
		c2 := New(st, Config{}, nil)
		defer c2.Close()
		got := c2.Fetch("g", []TopicPartition{{"t", 0}, {"t", 1}, {"t", 2}})
		if got[TopicPartition{"t", 0}].Offset != 42 || got[TopicPartition{"t", 0}].Metadata != "md" ||
			got[TopicPartition{"t", 1}].Offset != 7 || got[TopicPartition{"t", 2}].Offset != -1 {
			t.Fatalf("%+v", got)
		}
		if len(c2.Fetch("g", nil)) != 2 {
			t.Fatal("fetch all")
		}
		del := make(chan int16, 1)
		c2.Delete("g", func(e int16) { del <- e })
		if e := <-del; e != 0 {
			t.Fatal(e)
		}
		if len(c2.Fetch("g", nil)) != 0 {
			t.Fatal("offsets survived delete")
		}
	})
}
