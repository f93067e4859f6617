package vrrp

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseAdvertisement checks that no input panics the decoder and that
// whatever parses re-encodes to exactly the same bytes.
func FuzzParseAdvertisement(f *testing.F) {
	for _, g := range goldenAdverts {
		f.Add(mustHex(f, g.hex))
	}
	files, _ := filepath.Glob("testdata/*.hex")
	for _, name := range files {
		text, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		pkt := mustHex(f, string(text))
		f.Add(pkt[int(pkt[0]&0x0f)*4:])
	}
	f.Add([]byte{})
	f.Add([]byte(strings.Repeat("\x21", 16)))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAdvertisement(b)
		if err != nil {
			return
		}
		enc, err := a.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed advert does not encode: %v", err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("round trip changed the packet:\n in % x\nout % x", b, enc)
		}
		var p receivePolicy
		p.check(a, RecvMeta{}) // must not panic either
	})
}
