package session

import "testing"

func TestQueueLimitAndInflight(t *testing.T) {
	s := New("c", 3)
	s.Lock()
	defer s.Unlock()
	var msgs []*Message
	for i := 0; i < 5; i++ {
		m := NewMessage([]byte("t"), []byte{byte(i)}, nil)
		m.Ref() // keep one for the test
		msgs = append(msgs, m)
		s.Enqueue(Entry{Msg: m, QoS: 1})
	}
	if s.QueueLen() != 3 || s.Dropped != 2 {
		t.Fatalf("len %d dropped %d", s.QueueLen(), s.Dropped)
	}
	if msgs[4].Refs() != 1 {
		t.Fatal("dropped message reference not released")
	}
	var ids []uint16
	for {
		e, ok := s.Pop()
		if !ok {
			break
		}
		ids = append(ids, s.AddInflight(e))
	}
	if s.InflightLen() != 3 || ids[0] == ids[1] {
		t.Fatalf("inflight %d ids %v", s.InflightLen(), ids)
	}
	// ack out of order, then in order
	if _, ok := s.Ack(ids[1], 1); !ok {
		t.Fatal("ack")
	}
	if _, ok := s.Ack(ids[1], 1); ok {
		t.Fatal("double ack accepted")
	}
	var seen []uint16
	s.EachInflight(func(f *Inflight) { seen = append(seen, f.PacketID) })
	if len(seen) != 2 || seen[0] != ids[0] || seen[1] != ids[2] {
		t.Fatalf("inflight order %v", seen)
	}
	f, _ := s.Ack(ids[0], 1)
	f.Msg.Release()
	s.Clear()
	if s.InflightLen() != 0 || msgs[2].Refs() != 1 {
		t.Fatal("clear")
	}
}

func TestMessageEncoding(t *testing.T) {
	m := NewMessage([]byte("a/b"), []byte("payload"), []byte{1, 2})
	m.QoS, m.Retain, m.ExpireAt = 2, true, 12345
	d, err := DecodeMessage(AppendMessage(nil, m))
	if err != nil || string(d.Topic) != "a/b" || string(d.Payload) != "payload" || len(d.Props) != 2 || d.QoS != 2 || !d.Retain || d.ExpireAt != 12345 {
		t.Fatalf("%v %+v", err, d)
	}
	if _, err := DecodeMessage([]byte{1, 2}); err == nil {
		t.Fatal("short record accepted")
	}
}

// Deliveries restored after a restart keep their packet identifiers and
// state; fresh identifiers continue after the newest restored one, also
// across the 65535 -> 1 wrap.
func TestRestoreInflight(t *testing.T) {
	s := New("c", 10)
	s.Lock()
	defer s.Unlock()
	s.RestoreInflight(Entry{QoS: 2}, 65534, true, StoredReleased)
	s.RestoreInflight(Entry{Msg: NewMessage([]byte("t"), nil, nil), QoS: 1}, 2, false, StoredSent)
	s.RestoreInflight(Entry{Msg: NewMessage([]byte("t"), nil, nil), QoS: 2}, 65535, false, StoredSent)
	if s.InflightLen() != 3 {
		t.Fatalf("inflight %d", s.InflightLen())
	}
	if f := s.FindInflight(65534); f == nil || !f.Released || f.Stored != StoredReleased {
		t.Fatalf("restored released delivery: %+v", f)
	}
	if id := s.AddInflight(Entry{Msg: NewMessage([]byte("t"), nil, nil), QoS: 1}); id != 3 {
		t.Fatalf("fresh id %d after restored 65534, 2, 65535: want 3", id)
	}
	if f := s.NewestInflight(); f == nil || f.PacketID != 3 {
		t.Fatalf("newest %+v", f)
	}
	if f, ok := s.Ack(2, 1); !ok || f.PacketID != 2 {
		t.Fatal("ack restored id")
	} else {
		f.Msg.Release()
	}
	s.Clear()
}

// TestDropQoS0 keeps the QoS 1/2 entries in order, across the ring's wrap,
// and releases the dropped ones.
func TestDropQoS0(t *testing.T) {
	s := New("c", 100)
	s.Lock()
	defer s.Unlock()
	var msgs []*Message
	add := func(i int, qos byte) {
		m := NewMessage([]byte("t"), []byte{byte(i)}, nil)
		m.Ref()
		msgs = append(msgs, m)
		s.Enqueue(Entry{Msg: m, QoS: qos})
	}
	for i := 0; i < 6; i++ { // move the head so the queue wraps
		add(i, 1)
	}
	for i := 0; i < 6; i++ {
		e, _ := s.Pop()
		e.Msg.Release()
	}
	for i := 6; i < 14; i++ {
		add(i, byte(i%3)) // QoS 0, 1, 2 in turn
	}
	if n := s.DropQoS0(); n != 3 {
		t.Fatalf("dropped %d, want 3", n)
	}
	var got []byte
	for {
		e, ok := s.Pop()
		if !ok {
			break
		}
		if e.QoS == 0 {
			t.Fatal("a QoS 0 entry kept")
		}
		got = append(got, e.Msg.Payload[0])
		e.Msg.Release()
	}
	if string(got) != string([]byte{7, 8, 10, 11, 13}) {
		t.Fatalf("kept %v", got)
	}
	for i := 6; i < 14; i++ {
		if msgs[i].Refs() != 1 {
			t.Fatalf("message %d: %d references", i, msgs[i].Refs())
		}
	}
}
