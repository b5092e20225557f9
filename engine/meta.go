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
// replayed into memory on start and compacted when mostly dead (on start, and
// while running by rewriting the live set at its end). Topics,
// consumer offsets, exchanges, bindings, queues, retained messages and every
// other small durable state of the protocols live here.
type Meta struct {
	log    *segment.Log
	syncs  bool // flush=sync: an append's completion means it is durable
	logger *slog.Logger

	mu      sync.RWMutex
	data    map[string]map[string][]byte
	builder segment.BatchBuilder
	records int // records from the log's start, for the compaction decision
	live    int // keys in data

	compactBytesMin int64 // metaCompactBytesMin (tests lower it)
}

// ErrMetaKey rejects keys that cannot be stored.
var ErrMetaKey = errors.New("engine: invalid metadata key")

const (
	// metaSegmentBytes is the metadata log's segment size. A running
	// compaction frees whole segments only, so they are kept small.
	metaSegmentBytes = 16 << 20
	// metaCompactDeadRatio: a running compaction starts once the log holds
	// this many records per live key (and metaCompactBytesMin bytes).
	metaCompactDeadRatio = 4
	metaCompactBytesMin  = 2 * metaSegmentBytes
)

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
	m := &Meta{log: l, syncs: cfg.Flush != segment.FlushAsync, logger: logger,
		compactBytesMin: metaCompactBytesMin, data: map[string]map[string][]byte{}}
	if err := m.replay(); err != nil {
		l.Close()
		return nil, err
	}
	live := m.live
	if m.records < metaCompactRecordsMin || m.records < 2*live {
		return m, nil
	}
	// Compact: write the live set to a fresh log, then swap directories.
	fresh, err := segment.Open(next, cfg, w, logger)
	if err != nil {
		return m, nil // keep the uncompacted log; compaction is an optimisation
	}
	if err := m.appendAll(fresh)(); err != nil {
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
	err := m.log.ScanRecords(m.log.StartOffset(), 4<<20, func(r *segment.Record) error {
		m.records++
		if ns, key, ok := strings.Cut(string(r.Key), "\x00"); ok {
			m.applyLocked(ns, key, r.Value)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("engine: meta replay: %w", err)
	}
	return nil
}

func (m *Meta) applyLocked(ns, key string, value []byte) {
	t := m.data[ns]
	if value == nil {
		if _, ok := t[key]; ok {
			delete(t, key)
			m.live--
		}
		return
	}
	if t == nil {
		t = map[string][]byte{}
		m.data[ns] = t
	}
	if _, ok := t[key]; !ok {
		m.live++
	}
	t[key] = append([]byte(nil), value...)
}

// compactOnline rewrites the live set at the log's end and moves the log
// start past everything before it, once the log holds metaCompactDeadRatio
// records per live key. Without it, overwritten and deleted records (group
// offset commits, per-message MQTT session state) grow the log until the
// next start. Replay from the new start sees the whole live set, then what
// was written after it. The engine's background loop calls it.
func (m *Meta) compactOnline() error {
	m.mu.RLock()
	due := m.records >= metaCompactRecordsMin && m.records >= metaCompactDeadRatio*m.live
	m.mu.RUnlock()
	if !due || m.log.Stats().Bytes < m.compactBytesMin {
		return nil
	}
	m.mu.Lock()
	_, _, from := m.log.Offsets() // every write appends under m.mu: the snapshot starts here
	before, live := m.records, m.live
	wait := m.appendAll(m.log)
	m.records = live
	m.mu.Unlock()
	if err := wait(); err != nil {
		return fmt.Errorf("engine: meta compaction: %w", err)
	}
	if !m.syncs {
		if err := m.log.SyncFrom(from); err != nil {
			return fmt.Errorf("engine: meta compaction: %w", err)
		}
	}
	if _, hw, _ := m.log.Offsets(); from > hw {
		return nil // an empty live set behind writes still in flight: next time
	}
	freed := m.log.Stats().Bytes
	if err := m.log.DeleteBefore(from); err != nil {
		return fmt.Errorf("engine: meta compaction: %w", err)
	}
	m.logger.Info("metadata compacted", "records_before", before, "records_after", live,
		"bytes_freed", freed-m.log.Stats().Bytes)
	return nil
}

// appendAll appends the whole live set to l (the caller holds m.mu or is
// alone) and returns a wait for its completions.
func (m *Meta) appendAll(l *segment.Log) (wait func() error) {
	var b segment.BatchBuilder
	var pending []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		wg.Add(1)
		err := l.Append(b.Bytes(), segment.DoneFunc(func(err error) {
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
	fail := func(err error) func() error {
		return func() error { wg.Wait(); return err }
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
					return fail(err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	return func() error {
		wg.Wait()
		for _, err := range pending {
			if err != nil {
				return err
			}
		}
		return nil
	}
}

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
		c = segment.DoneFunc(done)
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
