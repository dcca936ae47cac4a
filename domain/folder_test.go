package domain

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// drive runs a folder pass against pages of listing positions and a dirty
// set, and returns the fetch ranges in order and the final cursor.
func drive(t *testing.T, f *FolderPass, pages [][]int, dirty map[int]bool) (fetches []string, listed int) {
	t.Helper()
	for guard := 0; guard < 10000; guard++ {
		s := f.Next()
		switch s.Kind {
		case FolderDone:
			return
		case FolderList:
			page := pages[listed]
			listed++
			next := ""
			if listed < len(pages) {
				next = fmt.Sprintf("p%d", listed)
			}
			refs := make([]ItemRef, len(page))
			for i, p := range page {
				refs[i] = ItemRef{Position: p, ID: fmt.Sprint("id", p)}
			}
			f.Start(s)
			f.AddPage(refs, next)
		case FolderFetch:
			ok := true
			for _, it := range s.Step.Items {
				ok = ok && !dirty[it.Position]
			}
			r := RangeOf(s.Step.Items)
			fetches = append(fetches, fmt.Sprintf("%d-%d/%d", r.First, r.Last, r.Count))
			f.Start(s)
			f.Record(s.Slot, ok)
		}
	}
	t.Fatal("folder pass did not finish")
	return
}

func seq(a, b int) []int {
	var out []int
	for i := a; i <= b; i++ {
		out = append(out, i)
	}
	return out
}

func TestFolderPass(t *testing.T) {
	cases := []struct {
		name    string
		batch   int
		pages   [][]int
		cursor  Cursor
		skip    map[int]Disposition
		dirty   map[int]bool
		fetches []string
		scanned int
	}{
		{name: "batches span pages", batch: 4, pages: [][]int{seq(1, 6), seq(7, 10)},
			fetches: []string{"1-4/4", "5-8/4", "9-10/2"}, scanned: 10},
		{name: "known dirty left out", batch: 400, pages: [][]int{seq(1, 400)}, skip: map[int]Disposition{2: SkipQuarantined},
			fetches: []string{"1-400/399"}, scanned: 400},
		{name: "due quarantine retried alone before the batch", batch: 10, pages: [][]int{seq(1, 5)}, skip: map[int]Disposition{3: RetryQuarantined},
			fetches: []string{"3-3/1", "1-5/4"}, scanned: 5},
		{name: "resume skips before cursor and already stored", batch: 3, pages: [][]int{seq(4, 8)},
			cursor: Cursor{Pass: "p", Position: 5, PageToken: "p0", PageFirst: 4}, skip: map[int]Disposition{6: SkipDone},
			fetches: []string{"5-8/3"}, scanned: 4},
		{name: "empty folder", batch: 5, pages: [][]int{{}}, fetches: nil, scanned: 0},
		{name: "isolation inside a pass", batch: 5, pages: [][]int{seq(1, 10)}, dirty: map[int]bool{7: true},
			fetches: []string{"1-5/5", "6-10/5", "6-8/3", "9-10/2", "6-6/1", "7-7/1", "8-8/1"}, scanned: 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := NewFolderPass(c.batch, 1, c.cursor, func(it ItemRef) Disposition { return c.skip[it.Position] })
			fetches, _ := drive(t, f, c.pages, c.dirty)
			if fmt.Sprint(fetches) != fmt.Sprint(c.fetches) {
				t.Fatalf("fetches %v, want %v", fetches, c.fetches)
			}
			if f.Scanned() != c.scanned {
				t.Fatalf("scanned %d, want %d", f.Scanned(), c.scanned)
			}
		})
	}
}

func TestFolderPassCursorNamesThePageToResumeFrom(t *testing.T) {
	f := NewFolderPass(4, 1, Cursor{Pass: "p"}, func(ItemRef) Disposition { return Fetch })
	// page 1 = 1..6 (token ""), page 2 = 7..10 (token "p1")
	if s := f.Next(); s.Kind != FolderList || s.PageToken != "" {
		t.Fatalf("first step %+v", s)
	}
	f.AddPage(refsOf(seq(1, 6)), "p1")
	fetch := f.Next() // fetch 1-4
	f.Start(fetch)
	f.Record(fetch.Slot, true) // batch done: cursor moves to 5, still on page 1
	if c := f.Cursor(); c.Position != 5 || c.PageToken != "" || c.PageFirst != 1 {
		t.Fatalf("cursor after first batch %+v", c)
	}
	if s := f.Next(); s.Kind != FolderList || s.PageToken != "p1" {
		t.Fatalf("expected listing of page 2, got %+v", s)
	}
	f.AddPage(refsOf(seq(7, 10)), "")
	fetch = f.Next()
	f.Start(fetch)
	f.Record(fetch.Slot, true) // 5-8 done: cursor 9 on page 2
	if c := f.Cursor(); c.Position != 9 || c.PageToken != "p1" || c.PageFirst != 7 {
		t.Fatalf("cursor after second batch %+v", c)
	}
}

func refsOf(pos []int) []ItemRef {
	out := make([]ItemRef, len(pos))
	for i, p := range pos {
		out[i] = ItemRef{Position: p, ID: fmt.Sprint("id", p)}
	}
	return out
}

func TestSlidingWindow(t *testing.T) {
	t0 := time.Unix(0, 0)
	w := NewSlidingWindow(3, 10*time.Second)
	for i := 0; i < 3; i++ {
		if d := w.Wait(t0.Add(time.Duration(i) * time.Second)); d != 0 {
			t.Fatalf("request %d waited %v", i, d)
		}
		w.Add(t0.Add(time.Duration(i) * time.Second))
	}
	if d := w.Wait(t0.Add(5 * time.Second)); d != 5*time.Second {
		t.Fatalf("full window wait %v, want 5s", d)
	}
	if d := w.Wait(t0.Add(10 * time.Second)); d != 0 {
		t.Fatalf("after the oldest expired: %v", d)
	}
}

// The window's ring grows as requests come and wraps as they leave: its
// answers stay those of a plain list of every request in the window.
func TestSlidingWindowGrowsAndWrapsLikeAList(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	for _, limit := range []int{1, 7, 100} {
		w := NewSlidingWindow(limit, 10*time.Second)
		var list []time.Time // the model: every request still in the window
		now := time.Unix(1_000, 0)
		for step := 0; step < 3000; step++ {
			now = now.Add(time.Duration(rng.Intn(400)) * time.Millisecond)
			kept := list[:0]
			for _, at := range list {
				if at.Add(10 * time.Second).After(now) {
					kept = append(kept, at)
				}
			}
			list = kept
			n := 1 + rng.Intn(3)
			want := time.Duration(0)
			if need := min(n, limit); len(list)+need > limit {
				want = list[len(list)+need-limit-1].Add(10 * time.Second).Sub(now)
			}
			if got := w.WaitN(now, n); got != want {
				t.Fatalf("limit %d step %d: WaitN(%d) = %v, want %v (%d in the window)", limit, step, n, got, want, len(list))
			}
			if want == 0 {
				w.Add(now)
				list = append(list, now)
			}
		}
		if len(w.times) > limit {
			t.Fatalf("limit %d: the ring holds %d slots", limit, len(w.times))
		}
	}
}

func TestBackoffAndClamp(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 8 * time.Second, MaxAttempts: 5}
	cases := []struct {
		attempt int
		jitter  float64
		want    time.Duration
	}{{2, 0, 500 * time.Millisecond}, {2, 0.999999, time.Second}, {3, 0, time.Second}, {5, 0, 4 * time.Second}, {9, 0.5, 6 * time.Second}}
	for _, c := range cases {
		if got := b.Delay(c.attempt, c.jitter).Round(time.Millisecond); got != c.want {
			t.Errorf("Delay(%d, %v) = %v, want %v", c.attempt, c.jitter, got, c.want)
		}
	}
	for _, c := range []struct{ in, want time.Duration }{{-time.Second, 0}, {time.Minute, time.Minute}, {100 * 365 * 24 * time.Hour, MaxRetryAfter}} {
		if got := ClampRetryAfter(c.in); got != c.want {
			t.Errorf("ClampRetryAfter(%v) = %v", c.in, got)
		}
	}
}

func TestJudgeRun(t *testing.T) {
	cases := []struct {
		errs, quar, skipped int
		want                RunState
		code                int
	}{{0, 0, 0, StateFinished, 0}, {0, 1, 0, StateWarnings, 3}, {0, 0, 2, StateWarnings, 3}, {1, 5, 5, StateNotFinished, 1}}
	for _, c := range cases {
		got := JudgeRun(c.errs, c.quar, c.skipped)
		if got != c.want {
			t.Errorf("JudgeRun(%d,%d,%d) = %s", c.errs, c.quar, c.skipped, got)
		}
	}
}
