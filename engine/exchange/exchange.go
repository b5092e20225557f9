package exchange

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Sentinel errors.
var (
	ErrNotFound        = errors.New("exchange: not found")
	ErrUnknownKind     = errors.New("exchange: unknown exchange type")
	ErrInequivalent    = errors.New("exchange: inequivalent arguments")
	ErrInUse           = errors.New("exchange: in use")
	ErrReserved        = errors.New("exchange: reserved name")
	ErrDefaultExchange = errors.New("exchange: operation not permitted on the default exchange")
)

// Kind is an exchange type.
type Kind uint8

const (
	Direct Kind = iota + 1
	Fanout
	Topic
	Headers
)

// ParseKind maps an AMQP exchange type name to a Kind.
func ParseKind(s string) (Kind, error) {
	switch s {
	case "direct":
		return Direct, nil
	case "fanout":
		return Fanout, nil
	case "topic":
		return Topic, nil
	case "headers":
		return Headers, nil
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownKind, s)
}

func (k Kind) String() string {
	switch k {
	case Direct:
		return "direct"
	case Fanout:
		return "fanout"
	case Topic:
		return "topic"
	case Headers:
		return "headers"
	}
	return "unknown"
}

// Table is a protocol-neutral argument or header table.
type Table = map[string]any

// Destination is what a binding leads to. *Exchange is a Destination
// (exchange-to-exchange binding); queues implement it too.
type Destination interface {
	DestinationName() string
}

// Exchange is one exchange. Its fields are immutable after declaration.
type Exchange struct {
	Name       string
	Kind       Kind
	Durable    bool
	AutoDelete bool
	Internal   bool
	Args       Table
	Alternate  string // alternate-exchange argument

	// guarded by Registry.mu
	bindings map[bindingKey]*Binding
	direct   map[string][]*Binding
	fanout   []*Binding
	topic    *topicNode
	headers  []*Binding
	hadBind  bool
}

func (x *Exchange) DestinationName() string { return x.Name }

// Binding connects a source exchange to a destination.
type Binding struct {
	Source      *Exchange
	Destination Destination
	Key         string
	Args        Table
	match       headersMatch
}

type bindingKey struct {
	dst  Destination
	key  string
	args string
}

func canonical(t Table) string {
	if len(t) == 0 {
		return ""
	}
	keys := slices.Sorted(maps.Keys(t))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%T:%v;", k, t[k], t[k])
	}
	return b.String()
}

// Registry is one virtual host's exchanges and bindings.
type Registry struct {
	mu        sync.RWMutex
	exchanges map[string]*Exchange
	byDest    map[Destination]map[*Binding]struct{}
	// Default resolves the default exchange ("") to a destination by
	// routing key (AMQP: the queue of that name). May be nil.
	Default func(key string) Destination
}

// NewRegistry returns a registry with the standard AMQP exchanges
// (amq.direct, amq.fanout, amq.topic, amq.headers, amq.match).
func NewRegistry() *Registry {
	r := &Registry{exchanges: map[string]*Exchange{}, byDest: map[Destination]map[*Binding]struct{}{}}
	for name, k := range map[string]Kind{"amq.direct": Direct, "amq.fanout": Fanout, "amq.topic": Topic,
		"amq.headers": Headers, "amq.match": Headers} {
		r.exchanges[name] = newExchange(name, k, true, false, false, nil)
	}
	return r
}

func newExchange(name string, k Kind, durable, autoDelete, internal bool, args Table) *Exchange {
	x := &Exchange{Name: name, Kind: k, Durable: durable, AutoDelete: autoDelete, Internal: internal,
		Args: args, bindings: map[bindingKey]*Binding{}}
	if ae, ok := args["alternate-exchange"].(string); ok {
		x.Alternate = ae
	}
	switch k {
	case Direct:
		x.direct = map[string][]*Binding{}
	case Topic:
		x.topic = &topicNode{}
	}
	return x
}

// Builtin reports whether name is a predeclared exchange.
func Builtin(name string) bool {
	return name == "" || strings.HasPrefix(name, "amq.")
}

// Declare returns the exchange name, creating it if needed. An existing
// exchange declared with a different kind, durability, auto-delete, internal
// flag or arguments gives ErrInequivalent.
func (r *Registry) Declare(name string, k Kind, durable, autoDelete, internal bool, args Table) (x *Exchange, created bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if x, ok := r.exchanges[name]; ok {
		if x.Kind != k || x.Durable != durable || x.AutoDelete != autoDelete || x.Internal != internal ||
			canonical(x.Args) != canonical(args) {
			return x, false, fmt.Errorf("%w for exchange '%s'", ErrInequivalent, name)
		}
		return x, false, nil
	}
	if name == "" || strings.HasPrefix(name, "amq.") {
		return nil, false, fmt.Errorf("%w: '%s'", ErrReserved, name)
	}
	x = newExchange(name, k, durable, autoDelete, internal, args)
	r.exchanges[name] = x
	return x, true, nil
}

// Get returns the exchange name.
func (r *Registry) Get(name string) (*Exchange, bool) {
	r.mu.RLock()
	x, ok := r.exchanges[name]
	r.mu.RUnlock()
	return x, ok
}

// Exchanges returns every exchange.
func (r *Registry) Exchanges() []*Exchange {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Collect(maps.Values(r.exchanges))
}

// Delete removes an exchange and every binding from or to it. With ifUnused
// an exchange that is the source of bindings gives ErrInUse.
func (r *Registry) Delete(name string, ifUnused bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "" || strings.HasPrefix(name, "amq.") {
		return fmt.Errorf("%w: '%s'", ErrReserved, name)
	}
	x, ok := r.exchanges[name]
	if !ok {
		return fmt.Errorf("%w: '%s'", ErrNotFound, name)
	}
	if ifUnused && len(x.bindings) > 0 {
		return fmt.Errorf("%w: exchange '%s'", ErrInUse, name)
	}
	r.deleteLocked(x)
	return nil
}

func (r *Registry) deleteLocked(x *Exchange) {
	for _, b := range x.bindings {
		r.removeLocked(b, false)
	}
	for b := range r.byDest[x] {
		r.removeLocked(b, true)
	}
	delete(r.exchanges, x.Name)
}

// Bind adds a binding; it reports false if the same binding existed.
func (r *Registry) Bind(src *Exchange, dst Destination, key string, args Table) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	bk := bindingKey{dst, key, canonical(args)}
	if _, ok := src.bindings[bk]; ok {
		return false
	}
	b := &Binding{Source: src, Destination: dst, Key: key, Args: args}
	src.bindings[bk] = b
	src.hadBind = true
	switch src.Kind {
	case Direct:
		src.direct[key] = append(src.direct[key], b)
	case Fanout:
		src.fanout = append(src.fanout, b)
	case Topic:
		src.topic.add(key, b)
	case Headers:
		b.match = compileHeaders(args)
		src.headers = append(src.headers, b)
	}
	m := r.byDest[dst]
	if m == nil {
		m = map[*Binding]struct{}{}
		r.byDest[dst] = m
	}
	m[b] = struct{}{}
	return true
}

// Unbind removes a binding; it reports whether it existed. Auto-delete
// exchanges left without bindings are deleted and returned.
func (r *Registry) Unbind(src *Exchange, dst Destination, key string, args Table) (bool, []*Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := src.bindings[bindingKey{dst, key, canonical(args)}]
	if !ok {
		return false, nil
	}
	return true, r.removeLocked(b, true)
}

// UnbindAll removes every binding to dst (a deleted queue). Auto-delete
// exchanges left without bindings are deleted and returned.
func (r *Registry) UnbindAll(dst Destination) []*Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []*Exchange
	for b := range r.byDest[dst] {
		gone = append(gone, r.removeLocked(b, true)...)
	}
	delete(r.byDest, dst)
	return gone
}

// Bindings returns the bindings whose source is x.
func (r *Registry) Bindings(x *Exchange) []*Binding {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Collect(maps.Values(x.bindings))
}

// HasBindingsTo reports whether any binding leads to dst.
func (r *Registry) HasBindingsTo(dst Destination) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.byDest[dst]) > 0
}

func (r *Registry) removeLocked(b *Binding, autoDelete bool) []*Exchange {
	src := b.Source
	delete(src.bindings, bindingKey{b.Destination, b.Key, canonical(b.Args)})
	if m := r.byDest[b.Destination]; m != nil {
		delete(m, b)
		if len(m) == 0 {
			delete(r.byDest, b.Destination)
		}
	}
	switch src.Kind {
	case Direct:
		l := slices.DeleteFunc(slices.Clone(src.direct[b.Key]), func(o *Binding) bool { return o == b })
		if len(l) == 0 {
			delete(src.direct, b.Key)
		} else {
			src.direct[b.Key] = l
		}
	case Fanout:
		src.fanout = slices.DeleteFunc(slices.Clone(src.fanout), func(o *Binding) bool { return o == b })
	case Topic:
		src.topic.remove(b.Key, b)
	case Headers:
		src.headers = slices.DeleteFunc(slices.Clone(src.headers), func(o *Binding) bool { return o == b })
	}
	if autoDelete && src.AutoDelete && len(src.bindings) == 0 && r.exchanges[src.Name] == src {
		r.deleteLocked(src)
		return []*Exchange{src}
	}
	return nil
}

// Route appends to out the distinct final destinations of a message
// published to x with key and headers, following exchange-to-exchange
// bindings and alternate exchanges. The returned slice is out extended.
func (r *Registry) Route(x *Exchange, key string, headers Table, out []Destination) []Destination {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var seen [8]*Exchange
	return r.routeLocked(x, key, headers, out, seen[:0])
}

// RouteName is Route by exchange name; "" is the default exchange.
func (r *Registry) RouteName(name, key string, headers Table, out []Destination) ([]Destination, error) {
	if name == "" {
		if r.Default != nil {
			if d := r.Default(key); d != nil {
				out = append(out, d)
			}
		}
		return out, nil
	}
	x, ok := r.Get(name)
	if !ok {
		return out, fmt.Errorf("%w: '%s'", ErrNotFound, name)
	}
	return r.Route(x, key, headers, out), nil
}

func (r *Registry) routeLocked(x *Exchange, key string, headers Table, out []Destination, seen []*Exchange) []Destination {
	if slices.Contains(seen, x) {
		return out
	}
	seen = append(seen, x)
	n := len(out)
	add := func(b *Binding) {
		if e, ok := b.Destination.(*Exchange); ok {
			out = r.routeLocked(e, key, headers, out, seen)
			return
		}
		if !slices.Contains(out, b.Destination) {
			out = append(out, b.Destination)
		}
	}
	switch x.Kind {
	case Direct:
		for _, b := range x.direct[key] {
			add(b)
		}
	case Fanout:
		for _, b := range x.fanout {
			add(b)
		}
	case Topic:
		x.topic.match(key, add)
	case Headers:
		for _, b := range x.headers {
			if b.match.matches(headers) {
				add(b)
			}
		}
	}
	if len(out) == n && x.Alternate != "" {
		if ae, ok := r.exchanges[x.Alternate]; ok {
			out = r.routeLocked(ae, key, headers, out, seen)
		}
	}
	return out
}
