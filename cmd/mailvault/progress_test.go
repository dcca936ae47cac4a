package main

import (
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	for _, c := range []struct {
		s       progressState
		elapsed time.Duration
		want    string
	}{
		{progressState{done: 500, total: 2000, bytes: 50e6, detail: "folders 1/4"}, 10 * time.Second,
			" 10.0s  500/2000 items  50.0 items/s  5.0 MB/s  ETA 30s  folders 1/4"},
		{progressState{done: 0, total: 0}, time.Second, "  1.0s  0/0 items  0.0 items/s  0.0 MB/s  ETA ?"},
		{progressState{done: 7, total: 7, bytes: 1e6}, 2 * time.Second, "  2.0s  7/7 items  3.5 items/s  0.5 MB/s  ETA 0s"},
	} {
		if got := progressLine(c.s, c.elapsed); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
	}
	if checkProgress("bar") != nil || checkProgress("tty") != nil || checkProgress("fancy") == nil {
		t.Error("progress modes")
	}
}
