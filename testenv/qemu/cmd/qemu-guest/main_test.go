package main

import (
	"testing"
)

func TestRunRequest(t *testing.T) {
	for _, tc := range []struct{ req, want string }{
		{"7\t5000\techo hi; exit 3", "hi\n@@END 7 3\n"},
		{"8\t5000\tprintf x", "x\n@@END 8 0\n"},
		{"9\t5000\ttrue", "@@END 9 0\n"},
		{"10\t200\tsleep 5", "@@END 10 124\n"},
		{"garbage", ""},
	} {
		if got := string(runRequest(tc.req)); got != tc.want {
			t.Errorf("runRequest(%q) = %q, want %q", tc.req, got, tc.want)
		}
	}
}
