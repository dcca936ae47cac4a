package domain

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

func refs(first, last int) []ItemRef {
	out := make([]ItemRef, 0, last-first+1)
	for p := first; p <= last; p++ {
		out = append(out, ItemRef{Position: p, ID: fmt.Sprintf("id%d", p)})
	}
	return out
}

// isolate runs a batch against a set of dirty positions and returns the
// request lines in the seed's wording, plus what ended quarantined, inferred
// and delivered.
func isolate(t *testing.T, items []ItemRef, dirty map[int]bool) (lines []string, quarantined, inferred, delivered []int) {
	t.Helper()
	b := NewBatch(items)
	for guard := 0; guard < 100000; guard++ {
		s := b.Next()
		switch s.Kind {
		case StepDone:
			return
		case StepSplit:
			continue
		case StepInferDirty:
			inferred = append(inferred, s.Items[0].Position)
			continue
		case StepFetch:
			ok := true
			for _, it := range s.Items {
				if dirty[it.Position] {
					ok = false
				}
			}
			r := RangeOf(s.Items)
			var line string
			if r.Count == 1 {
				line = fmt.Sprintf("Fetch item #%d", r.First)
			} else {
				line = fmt.Sprintf("Fetch %d items (#%d - #%d)", r.Count, r.First, r.Last)
			}
			if ok {
				line += " – success"
				for _, it := range s.Items {
					delivered = append(delivered, it.Position)
				}
			} else {
				line += " – failed"
			}
			lines = append(lines, line)
			for _, q := range b.Record(ok) {
				quarantined = append(quarantined, q.Position)
			}
		}
	}
	t.Fatal("isolation did not terminate")
	return
}

func TestSeedExample(t *testing.T) {
	want := []string{
		"Fetch 400 items (#1 - #400) – failed",
		"Fetch 200 items (#1 - #200) – failed",
		"Fetch 200 items (#201 - #400) – success",
		"Fetch 100 items (#1 - #100) – failed",
		"Fetch 100 items (#101 - #200) – success",
		"Fetch 50 items (#1 - #50) – failed",
		"Fetch 50 items (#51 - #100) – success",
		"Fetch 25 items (#1 - #25) – failed",
		"Fetch 25 items (#26 - #50) – success",
		"Fetch 13 items (#1 - #13) – failed",
		"Fetch 12 items (#14 - #25) – success",
		"Fetch 7 items (#1 - #7) – failed",
		"Fetch 6 items (#8 - #13) – success",
		"Fetch 4 items (#1 - #4) – failed",
		"Fetch 3 items (#5 - #7) – success",
		"Fetch item #1 – success",
		"Fetch item #2 – failed",
		"Fetch item #3 – success",
		"Fetch item #4 – success",
	}
	lines, q, inf, _ := isolate(t, refs(1, 400), map[int]bool{2: true})
	if !slices.Equal(lines, want) {
		t.Fatalf("lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if !slices.Equal(q, []int{2}) || len(inf) != 0 {
		t.Fatalf("quarantined %v inferred %v", q, inf)
	}
}

// referenceRequests counts requests by the rules, written as plain
// recursion, independently of the state machine.
func referenceRequests(items []int, dirty map[int]bool) int {
	fails := func(s []int) bool {
		for _, p := range s {
			if dirty[p] {
				return true
			}
		}
		return false
	}
	var iso func(s []int) int
	iso = func(s []int) int { // s is known to hold a dirty item, not yet split
		if len(s) <= SinglesThreshold {
			n, allOK := 0, true
			for i, p := range s {
				if i == len(s)-1 && allOK {
					return n
				}
				n++
				if dirty[p] {
					allOK = false
				}
			}
			return n
		}
		mid := (len(s) + 1) / 2
		a, b := s[:mid], s[mid:]
		n := 1
		if !fails(a) {
			return n + iso(b)
		}
		n++
		n += iso(a)
		if fails(b) {
			n += iso(b)
		}
		return n
	}
	if !fails(items) {
		return 1
	}
	if len(items) == 1 {
		return 1
	}
	return 1 + iso(items)
}

func TestIsolationCases(t *testing.T) {
	cases := []struct {
		name  string
		n     int
		dirty []int
		want  int // requests, where known by hand
	}{
		{"clean", 400, nil, 1},
		{"seed", 400, []int{2}, 19},
		{"first", 400, []int{1}, -1},
		{"last", 400, []int{400}, -1},
		{"middle", 400, []int{201}, -1},
		{"two adjacent", 400, []int{7, 8}, -1},
		{"two far", 400, []int{3, 399}, -1},
		{"all of four", 4, []int{1, 2, 3, 4}, 5},
		{"single dirty", 1, []int{1}, 1},
		{"five with last dirty", 5, []int{5}, -1},
		{"odd 25", 25, []int{13}, -1},
		{"many", 400, []int{5, 50, 51, 120, 300, 301, 302, 399}, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dirty := map[int]bool{}
			for _, d := range c.dirty {
				dirty[d] = true
			}
			lines, q, inf, delivered := isolate(t, refs(1, c.n), dirty)
			pos := make([]int, c.n)
			for i := range pos {
				pos[i] = i + 1
			}
			ref := referenceRequests(pos, dirty)
			if len(lines) != ref {
				t.Fatalf("requests %d, reference %d\n%s", len(lines), ref, strings.Join(lines, "\n"))
			}
			if c.want >= 0 && len(lines) != c.want {
				t.Fatalf("requests %d, want %d", len(lines), c.want)
			}
			got := append(append([]int{}, q...), inf...)
			slices.Sort(got)
			want := append([]int{}, c.dirty...)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("quarantined+inferred %v, want %v", got, want)
			}
			if len(delivered)+len(got) != c.n {
				t.Fatalf("delivered %d + dirty %d != %d", len(delivered), len(got), c.n)
			}
		})
	}
}

func TestIsolationRandomAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	for i := 0; i < 500; i++ {
		n := 1 + rng.Intn(450)
		dirty := map[int]bool{}
		for k := rng.Intn(6); k > 0; k-- {
			dirty[1+rng.Intn(n)] = true
		}
		lines, q, inf, delivered := isolate(t, refs(1, n), dirty)
		pos := make([]int, n)
		for j := range pos {
			pos[j] = j + 1
		}
		if ref := referenceRequests(pos, dirty); ref != len(lines) {
			t.Fatalf("n=%d dirty=%v: %d requests, reference %d", n, dirty, len(lines), ref)
		}
		if len(q)+len(inf) != len(dirty) || len(delivered)+len(dirty) != n {
			t.Fatalf("n=%d dirty=%v: q=%v inf=%v delivered=%d", n, dirty, q, inf, len(delivered))
		}
	}
}

func TestHalve(t *testing.T) {
	for _, c := range []struct{ n, a, b int }{{25, 13, 12}, {400, 200, 200}, {7, 4, 3}, {5, 3, 2}} {
		a, b := Halve(refs(1, c.n))
		if len(a) != c.a || len(b) != c.b {
			t.Errorf("Halve(%d) = %d+%d, want %d+%d", c.n, len(a), len(b), c.a, c.b)
		}
	}
}
