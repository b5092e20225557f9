package exchange

import "strings"

// topicNode is a trie over dot-separated words; "*" matches one word and
// "#" zero or more.
type topicNode struct {
	children map[string]*topicNode
	bindings []*Binding
}

func (n *topicNode) add(key string, b *Binding) {
	for _, w := range strings.Split(key, ".") {
		if n.children == nil {
			n.children = map[string]*topicNode{}
		}
		c := n.children[w]
		if c == nil {
			c = &topicNode{}
			n.children[w] = c
		}
		n = c
	}
	n.bindings = append(n.bindings, b)
}

func (n *topicNode) remove(key string, b *Binding) {
	words := strings.Split(key, ".")
	var path []*topicNode
	cur := n
	for _, w := range words {
		path = append(path, cur)
		cur = cur.children[w]
		if cur == nil {
			return
		}
	}
	for i, o := range cur.bindings {
		if o == b {
			cur.bindings = append(cur.bindings[:i:i], cur.bindings[i+1:]...)
			break
		}
	}
	// prune empty nodes
	for i := len(words) - 1; i >= 0; i-- {
		if len(cur.bindings) > 0 || len(cur.children) > 0 {
			return
		}
		delete(path[i].children, words[i])
		cur = path[i]
	}
}

// match calls fn for every binding whose pattern matches key (a binding may
// be reported more than once; callers deduplicate).
func (n *topicNode) match(key string, fn func(*Binding)) {
	var words [16]string
	ws := words[:0]
	for {
		i := strings.IndexByte(key, '.')
		if i < 0 {
			ws = append(ws, key)
			break
		}
		ws = append(ws, key[:i])
		key = key[i+1:]
	}
	n.walk(ws, fn)
}

func (n *topicNode) walk(ws []string, fn func(*Binding)) {
	if len(ws) == 0 {
		for _, b := range n.bindings {
			fn(b)
		}
		// trailing "#" matches zero words
		if h := n.children["#"]; h != nil {
			h.walk(ws, fn)
		}
		return
	}
	if c := n.children[ws[0]]; c != nil {
		c.walk(ws[1:], fn)
	}
	if c := n.children["*"]; c != nil {
		c.walk(ws[1:], fn)
	}
	if h := n.children["#"]; h != nil {
		// "#" consumes 0..len(ws) words
		for i := 0; i <= len(ws); i++ {
			h.walk(ws[i:], fn)
		}
	}
}
