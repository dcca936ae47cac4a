package simtenant

import (
	"math"
	"testing"
	"time"
)

// The budget: a burst, then answers delayed deeper into the debt, the
// cutoff refused with a penalty that pushing lengthens, and recharge.
func TestBudget(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	type step struct {
		at      time.Duration
		n       int           // requests at once
		delay   time.Duration // of the last
		refused time.Duration
		penalty bool
	}
	for _, c := range []struct {
		name  string
		b     Budget
		steps []step
	}{
		{"burst then delays then the cutoff", Budget{Recharge: 10, Burst: 5, Cutoff: 10, MaxDelay: Duration(time.Second), Penalty: Duration(time.Minute)}, []step{
			{0, 5, 0, 0, false},
			{0, 5, 500 * time.Millisecond, 0, false},
			{0, 5, time.Second, 0, false},
			{0, 1, 0, time.Minute, true},
			{10 * time.Second, 1, 0, 50 * time.Second, false},
		}},
		{"pushing lengthens the block", Budget{Recharge: 1, Burst: 0, Cutoff: 1, Penalty: Duration(time.Minute), Push: Duration(10 * time.Second)}, []step{
			{0, 1, 0, 0, false},
			{0, 1, 0, time.Minute, true},
			{30 * time.Second, 1, 0, 40 * time.Second, false},
			{30 * time.Second, 1, 0, 50 * time.Second, false},
			{81 * time.Second, 1, 0, 0, false},
		}},
		{"the default penalty pays the debt", Budget{Recharge: 2, Burst: 0, Cutoff: 4}, []step{
			{0, 4, 0, 0, false},
			{0, 1, 0, 2 * time.Second, true},
			{2 * time.Second, 1, 0, 0, false},
		}},
		{"recharge up to the burst only", Budget{Recharge: 100, Burst: 2, Cutoff: 1, MaxDelay: Duration(time.Second)}, []step{
			{time.Hour, 2, 0, 0, false},
			{time.Hour, 1, time.Second, 0, false},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var st BudgetState
			for i, s := range c.steps {
				var delay, refused time.Duration
				var penalty bool
				for range s.n {
					delay, refused, penalty = c.b.Admit(&st, t0.Add(s.at), 1)
				}
				if delay != s.delay || refused != s.refused || penalty != s.penalty {
					t.Fatalf("step %d: delay %v, refused %v, penalty %v; want %v, %v, %v", i, delay, refused, penalty, s.delay, s.refused, s.penalty)
				}
			}
		})
	}
}

// Utilisation counts from the end of the first penalty, against the
// recharge the load curve granted.
func TestBudgetUtilisation(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	b := Budget{Recharge: 10, Burst: 0, Cutoff: 1, Penalty: Duration(time.Minute)}
	st := BudgetState{Blocked: [][2]time.Time{{t0, t0.Add(time.Minute)}}}
	var admitted []time.Time
	for i := range 400 { // 5 a second for 80 s after the penalty
		admitted = append(admitted, t0.Add(time.Minute+time.Duration(i)*200*time.Millisecond))
	}
	admitted = append([]time.Time{t0.Add(-time.Second)}, admitted...)
	full := func(time.Time) float64 { return 1 }
	if u := b.Utilisation(&st, admitted, full); math.Abs(u-0.5) > 0.01 {
		t.Errorf("utilisation %.3f, want 0.5", u)
	}
	half := func(time.Time) float64 { return 0.5 }
	if u := b.Utilisation(&st, admitted, half); math.Abs(u-1) > 0.02 {
		t.Errorf("utilisation at half capacity %.3f, want 1", u)
	}
	if u := b.Utilisation(&BudgetState{}, nil, full); u != -1 {
		t.Errorf("utilisation of nothing %.3f, want -1", u)
	}
}
