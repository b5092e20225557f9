package trie

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMatchTable(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"+/+", "/x", true},
		{"+", "/x", false},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/+/c", "a//c", true},
		{"a/b", "a/b/", false},
		{"a/b/", "a/b/", true},
		{"a/+/#", "a/b", true},
	}
	for _, c := range cases {
		if got := Matches(c.filter, []byte(c.topic)); got != c.want {
			t.Errorf("Matches(%q,%q)=%v", c.filter, c.topic, got)
		}
		var tr Trie[int]
		tr.Subscribe(c.filter, Sub[int]{S: 1})
		got := len(tr.Match([]byte(c.topic), nil)) == 1
		if got != c.want {
			t.Errorf("Trie(%q,%q)=%v", c.filter, c.topic, got)
		}
		tr.Unsubscribe(c.filter, 1)
		if len(tr.root.children) != 0 || tr.Count() != 0 {
			t.Errorf("not pruned after unsubscribe %q", c.filter)
		}
	}
}

func TestRandomAgainstMatches(t *testing.T) {
	levels := []string{"a", "b", "", "$x", "+", "#"}
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(wild bool) string {
		n := 1 + r.IntN(4)
		s := ""
		for i := 0; i < n; i++ {
			l := levels[r.IntN(len(levels))]
			if !wild && (l == "+" || l == "#") {
				l = "a"
			}
			if l == "$x" && i > 0 {
				l = "b"
			}
			if l == "#" && i != n-1 {
				l = "+"
			}
			if i > 0 {
				s += "/"
			}
			s += l
		}
		return s
	}
	var tr Trie[int]
	filters := make([]string, 200)
	for i := range filters {
		filters[i] = gen(true)
		tr.Subscribe(filters[i], Sub[int]{S: i})
	}
	var dst []Sub[int]
	for k := 0; k < 2000; k++ {
		topic := []byte(gen(false))
		dst = tr.Match(topic, dst[:0])
		var got, want []int
		for _, s := range dst {
			got = append(got, s.S)
		}
		for i, f := range filters {
			if Matches(f, topic) {
				want = append(want, i)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("topic %q: got %v want %v", topic, got, want)
		}
	}
}

func TestShared(t *testing.T) {
	var tr Trie[int]
	for i := 0; i < 3; i++ {
		tr.Subscribe("$share/g/s/+", Sub[int]{S: i})
	}
	tr.Subscribe("s/#", Sub[int]{S: 9})
	count := map[int]int{}
	for k := 0; k < 30; k++ {
		for _, s := range tr.Match([]byte("s/1"), nil) {
			count[s.S]++
		}
	}
	if count[0] != 10 || count[1] != 10 || count[2] != 10 || count[9] != 30 {
		t.Fatalf("%v", count)
	}
	tr.Online = func(s int) bool { return s == 2 }
	for _, s := range tr.Match([]byte("s/1"), nil) {
		if s.Share && s.S != 2 {
			t.Fatal("offline member picked")
		}
	}
	if _, _, _, err := SplitShared("$share/g"); err == nil {
		t.Fatal("want error")
	}
}

func TestMatchNoAlloc(t *testing.T) {
	var tr Trie[int]
	tr.Subscribe("bench/#", Sub[int]{S: 1})
	tr.Subscribe("bench/+/x", Sub[int]{S: 2})
	dst := make([]Sub[int], 0, 8)
	topic := []byte("bench/1/x")
	if n := testing.AllocsPerRun(100, func() { dst = tr.Match(topic, dst[:0]) }); n != 0 {
		t.Fatalf("allocs %v", n)
	}
}

func BenchmarkMatch(b *testing.B) {
	var tr Trie[int]
	for i := 0; i < 1000; i++ {
		tr.Subscribe("dev/"+string(rune('a'+i%26))+"/+/x", Sub[int]{S: i})
	}
	tr.Subscribe("dev/#", Sub[int]{S: -1})
	topic := []byte("dev/c/123/x")
	dst := make([]Sub[int], 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		dst = tr.Match(topic, dst[:0])
	}
}

func TestMembers(t *testing.T) {
	var tr Trie[int]
	for i, f := range []string{"$share/g/a/+", "$share/g/a/+", "$share/g/a/#", "$share/h/a/+", "a/+"} {
		if _, err := tr.Subscribe(f, Sub[int]{S: i % 3}); err != nil {
			t.Fatal(err)
		}
	}
	got := tr.Members("$share/g/a/+", nil)
	if len(got) != 2 || got[0].S != 0 || got[1].S != 1 || got[0].Filter != "$share/g/a/+" {
		t.Fatalf("members %+v", got)
	}
	if got := tr.Members("$share/x/a/+", nil); len(got) != 0 {
		t.Fatalf("unknown group: %+v", got)
	}
	if got := tr.Members("a/+", nil); len(got) != 0 {
		t.Fatalf("ordinary filter: %+v", got)
	}
	if m := tr.Match([]byte("a/b"), nil); len(m) != 4 {
		t.Fatalf("match %+v", m)
	}
}
