package manpage

import (
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	var b strings.Builder
	err := Write(&b, Page{Name: "x", Section: "8", Source: "fwpair 1", Manual: "M", Summary: "does -things",
		Sections: []Section{{Heading: "Options", Blocks: []Block{
			Item("-c file", `path with \ backslash`),
			P(".starts with a dot"),
			Example("a\n.b"),
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{".TH X 8 \"\" \"fwpair 1\" \"M\"", "x \\- does \\-things", ".SH OPTIONS", ".TP\n.B \\-c file\npath with \\e backslash",
		"\\&.starts with a dot", ".nf\n.RS 4\na\n\\&.b\n.RE\n.fi"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
