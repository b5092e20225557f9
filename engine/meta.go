package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"quartet/segment"
)

// Meta is the metadata catalog: a small namespaced key/value store kept as a
// log of records (key = namespace NUL key, value = bytes, null value = deleted),
// replayed into memory on start and compacted then when mostly dead. Topics,
// consumer offsets, exchanges, bindings, queues, retained messages and every
// other small durable state of the protocols live here.
type Meta struct {
	log *segment.Log

	mu      sync.RWMutex
	data    map[string]map[string][]byte
	builder segment.BatchBuilder
	records int // records in the log, for the compaction decision
}

// ErrMetaKey rejects keys that cannot be stored.
var ErrMetaKey = errors.New("engine: invalid metadata key")

// metaSegmentBytes is the metadata log's segment size.
const metaSegmentBytes = 64 << 20

// metaCompactRecordsMin is the log size below which compaction is not worth it.
const metaCompactRecordsMin = 1024

func openMeta(dir string, w segment.Writer, cfg segment.Config, logger *slog.Logger) (*Meta, error) {
	cur, next, old := dir, dir+".compact", dir+".old"
	// Finish a compaction interrupted between its two renames.
	if _, err := os.Stat(cur); os.IsNotExist(err) {
		if _, err := os.Stat(next); err == nil {
			if err := os.Rename(next, cur); err != nil {
				return nil, fmt.Errorf("engine: meta: %w", err)
			}
		}
	}
	os.RemoveAll(next)
	os.RemoveAll(old)

	l, err := segment.Open(cur, cfg, w, logger)
	if err != nil {
		return nil, err
	}
	m := &Meta{log: l, data: map[string]map[string][]byte{}}
	if err := m.replay(); err != nil {
		l.Close()
		return nil, err
	}
	live := 0
	for _, ns := range m.data {
		live += len(ns)
	}
	if m.records < metaCompactRecordsMin || m.records < 2*live {
		return m, nil
	}
	// Compact: write the live set to a fresh log, then swap directories.
	fresh, err := segment.Open(next, cfg, w, logger)
	if err != nil {
		return m, nil // keep the uncompacted log; compaction is an optimisation
	}
	if err := m.writeAll(fresh); err != nil {
		fresh.Remove()
		return m, nil
	}
	fresh.Close()
	l.Close()
	if err := os.Rename(cur, old); err != nil {
		return nil, fmt.Errorf("engine: meta compaction: %w", err)
	}
	if err := os.Rename(next, cur); err != nil {
		return nil, fmt.Errorf("engine: meta compaction: %w", err)
	}
	os.RemoveAll(old)
	logger.Info("metadata compacted", "records_before", m.records, "records_after", live)
	if m.log, err = segment.Open(cur, cfg, w, logger); err != nil {
		return nil, err
	}
	m.records = live
	return m, nil
}

func (m *Meta) replay() error {
	_, hw, _ := m.log.Offsets()
	off := m.log.StartOffset()
	var buf []byte
	for off < hw {
		var err error
		buf, err = m.log.ReadBytes(buf[:0], off, 4<<20)
		if err != nil {
			return fmt.Errorf("engine: meta replay: %w", err)
		}
		if len(buf) == 0 {
			break
		}
		err = segment.SplitBatches(buf, func(h *segment.BatchHeader, batch []byte) error {
			off = h.LastOffset() + 1
			return segment.ForEachRecord(batch, func(r *segment.Record) error {
				m.records++
				ns, key, ok := strings.Cut(string(r.Key), "\x00")
				if !ok {
					return nil
				}
				m.applyLocked(ns, key, r.Value)
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("engine: meta replay: %w", err)
		}
	}
	return nil
}

func (m *Meta) applyLocked(ns, key string, value []byte) {
	if value == nil {
		if t := m.data[ns]; t != nil {
			delete(t, key)
		}
		return
	}
	t := m.data[ns]
	if t == nil {
		t = map[string][]byte{}
		m.data[ns] = t
	}
	t[key] = append([]byte(nil), value...)
}

// writeAll appends the whole live set to l and waits for it.
func (m *Meta) writeAll(l *segment.Log) error {
	var b segment.BatchBuilder
	var pending []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		wg.Add(1)
		err := l.Append(b.Bytes(), doneFunc(func(err error) {
			mu.Lock()
			pending = append(pending, err)
			mu.Unlock()
			wg.Done()
		}))
		if err != nil {
			wg.Done()
			return err
		}
		b.Reset()
		return nil
	}
	b.Reset()
	nss := make([]string, 0, len(m.data))
	for ns := range m.data {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		for key, v := range m.data[ns] {
			b.Add(0, []byte(ns+"\x00"+key), v, nil)
			if b.Len() >= 512 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	wg.Wait()
	for _, err := range pending {
		if err != nil {
			return err
		}
	}
	return nil
}

// doneFunc adapts a func to segment.Completer.
type doneFunc func(error)

func (f doneFunc) AppendDone(_ int64, err error) { f(err) }

// Put stores value under (ns, key). The new value is visible to Get at once;
// done (may be nil) is called once it is durable, or with the error.
func (m *Meta) Put(ns, key string, value []byte, done func(error)) {
	if value == nil {
		value = []byte{}
	}
	m.write(ns, key, value, done)
}

// Delete removes (ns, key); done as for Put.
func (m *Meta) Delete(ns, key string, done func(error)) {
	m.write(ns, key, nil, done)
}

func (m *Meta) write(ns, key string, value []byte, done func(error)) {
	if strings.IndexByte(ns, 0) >= 0 {
		if done != nil {
			done(fmt.Errorf("%w: namespace %q", ErrMetaKey, ns))
		}
		return
	}
	m.mu.Lock()
	m.applyLocked(ns, key, value)
	m.builder.Reset()
	m.builder.Add(0, []byte(ns+"\x00"+key), value, nil)
	m.records++
	var c segment.Completer
	if done != nil {
		c = doneFunc(done)
	}
	err := m.log.Append(m.builder.Bytes(), c)
	m.mu.Unlock()
	if err != nil && done != nil {
		done(fmt.Errorf("engine: meta: %w", err))
	}
}

// Get returns the value under (ns, key). The slice must not be modified.
func (m *Meta) Get(ns, key string) ([]byte, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	v, ok := m.data[ns][key]
	return v, ok
}

// Range calls fn for every key of ns in key order until fn returns false.
// It iterates over a snapshot, so fn may call Put and Delete.
func (m *Meta) Range(ns string, fn func(key string, value []byte) bool) {
	m.mu.RLock()
	t := m.data[ns]
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	vals := make([][]byte, len(keys))
	sort.Strings(keys)
	for i, k := range keys {
		vals[i] = t[k]
	}
	m.mu.RUnlock()
	for i, k := range keys {
		if !fn(k, vals[i]) {
			return
		}
	}
}

// metaDir is where the catalog lives under the data directory.
func metaDir(dataDir string) string { return filepath.Join(dataDir, "meta") }
