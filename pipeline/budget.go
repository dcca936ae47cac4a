package pipeline

import (
	"context"
	"sync/atomic"
)

// Discovery's requests go to the server outside the planner (which only
// knows a mailbox once it is discovered), yet they spend the same budgets.
// A source counts what it sends under a context that carries a counter, so
// that discovery can say what it spent and the planner can charge it to
// the mailbox's and the app's windows.

type budgetCounterKey struct{}

// CountingBudget returns ctx carrying a counter of the budget units sources
// spend under it.
func CountingBudget(ctx context.Context) (context.Context, *atomic.Int64) {
	n := new(atomic.Int64)
	return context.WithValue(ctx, budgetCounterKey{}, n), n
}

// SpendBudget records units spent by a request sent under ctx (a Graph
// $batch spends one per sub-request). Sources call it for every request
// the server counts; without a counter in ctx it does nothing.
func SpendBudget(ctx context.Context, units int) {
	if units <= 0 {
		return
	}
	if n, ok := ctx.Value(budgetCounterKey{}).(*atomic.Int64); ok {
		n.Add(int64(units))
	}
	if fn, ok := ctx.Value(spendHookKey{}).(func(int)); ok {
		fn(units)
	}
}

type spendHookKey struct{}

// NotingSpends returns ctx under which every unit a source spends is also
// told to fn as it is sent: discovery's requests reach the pacer, whose
// estimate of a limit counts what the server's window counted.
func NotingSpends(ctx context.Context, fn func(units int)) context.Context {
	return context.WithValue(ctx, spendHookKey{}, fn)
}
