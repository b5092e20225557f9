package netpoll

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestLengthPrefixed32(t *testing.T) {
	f := LengthPrefixed32(100)
	cases := []struct {
		in   []byte
		n    int
		want error
	}{
		{nil, 0, nil},
		{[]byte{0, 0, 0}, 0, nil},
		{[]byte{0, 0, 0, 0}, 4, nil},
		{[]byte{0, 0, 0, 2, 1}, 0, nil},
		{[]byte{0, 0, 0, 2, 1, 2, 3}, 6, nil},
		{[]byte{0, 0, 0, 97}, 0, ErrFrameTooLarge},
		{[]byte{0, 0, 0, 96}, 0, nil},
		{[]byte{0xff, 0, 0, 0}, 0, ErrMalformedFrame},
	}
	for _, c := range cases {
		n, err := f(c.in)
		if n != c.n || !errors.Is(err, c.want) {
			t.Errorf("%x: got %d %v, want %d %v", c.in, n, err, c.n, c.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = f([]byte{0, 0, 0, 1, 9}) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func FuzzLengthPrefixed32(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 7}, 16)
	f.Add([]byte{0, 0, 0, 0}, 0)
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff}, 1<<20)
	f.Add([]byte{0x80, 0, 0, 0, 1}, 8)
	f.Fuzz(func(t *testing.T, buf []byte, max int) {
		n, err := LengthPrefixed32(max)(buf)
		if err != nil {
			if n != 0 || !(errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrMalformedFrame)) {
				t.Fatalf("n=%d err=%v", n, err)
			}
			return
		}
		if n == 0 {
			return
		}
		if n < 4 || n > len(buf) || (max > 0 && n > max) {
			t.Fatalf("frame %d of %d bytes (max %d)", n, len(buf), max)
		}
		if want := int(binary.BigEndian.Uint32(buf)) + 4; n != want {
			t.Fatalf("n=%d want %d", n, want)
		}
		// A prefix of a whole frame is never whole.
		if m, err := LengthPrefixed32(max)(buf[:n-1]); m != 0 || err != nil {
			t.Fatalf("prefix: %d %v", m, err)
		}
	})
}

func TestLengthPrefixed32Needed(t *testing.T) {
	for _, c := range []struct {
		prefix []byte
		want   int
	}{{nil, 0}, {[]byte{0, 0, 1}, 0}, {[]byte{0, 0, 1, 0}, 260}, {[]byte{0, 0, 0, 0, 9}, 4}, {[]byte{0xff, 0, 0, 0}, 0}} {
		if got := LengthPrefixed32Needed(c.prefix); got != c.want {
			t.Fatalf("%v: %d, want %d", c.prefix, got, c.want)
		}
	}
}
