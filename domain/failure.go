package domain

import (
	"errors"
	"fmt"
	"time"
)

// FailureClass says what a failed request means for the backup.
type FailureClass string

const (
	// ClassDirty: the server failed the request because of an item it cannot
	// serve. Only this class leads to splitting.
	ClassDirty FailureClass = "dirty"
	// ClassThrottled: the server asked us to slow down. Never a reason to split.
	ClassThrottled FailureClass = "throttled"
	// ClassTransient: timeouts, resets and 5xx without a dirty-item code:
	// retried with backoff, never split.
	ClassTransient FailureClass = "transient"
	// ClassFatal: retrying will not help (access denied, folder gone, bad
	// request); the folder stops.
	ClassFatal FailureClass = "fatal"
	// ClassGone: the item was deleted at the source between listing and
	// fetching. Nothing is lost and nothing is dirty: it is recorded and left.
	ClassGone FailureClass = "gone"
	// ClassResync: the server discarded the listing state (an expired delta
	// token); the folder's listing starts again from the beginning.
	ClassResync FailureClass = "resync"
)

// Failure is the error a source returns for a failed request. Adapters fill it
// from the wire; the engine decides what to do by Class.
type Failure struct {
	Class FailureClass
	// Code is the server's own error code (ErrorCorruptData, TooManyRequests...).
	Code string
	// Message is the server's explanation, already stripped of secrets.
	Message string
	// RetryAfter is the server's hint (Retry-After, BackOffMilliseconds); zero
	// when none was given.
	RetryAfter time.Duration
	// Budget says whose budget a throttle was charged to, when the source
	// knows (BudgetMailbox, BudgetApp); empty: judged from the code.
	Budget string
}

// Budgets a throttle can be charged to.
const (
	// BudgetMailbox: the mailbox's own (EWS application impersonation
	// charges the target mailbox, not the service account).
	BudgetMailbox = "mailbox"
	// BudgetApp: the app's or service account's, whatever mailbox.
	BudgetApp = "app"
)

func (f *Failure) Error() string {
	s := fmt.Sprintf("%s failure", f.Class)
	if f.Code != "" {
		s += " " + f.Code
	}
	if f.Message != "" {
		s += ": " + f.Message
	}
	if f.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", f.RetryAfter)
	}
	return s
}

// AsFailure classifies any error: a *Failure keeps its class, anything else is
// transient (a reset connection or a timeout is worth another try).
func AsFailure(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{Class: ClassTransient, Code: "TransportError", Message: err.Error()}
}

// MaxRetryAfter bounds a server hint. A hostile or broken server that asks for
// years of silence gets a day: beyond the throttle patience the folder is
// skipped anyway, and the next run asks again.
const MaxRetryAfter = 24 * time.Hour

// ClampRetryAfter turns a server hint into a wait the engine will honour.
func ClampRetryAfter(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d > MaxRetryAfter:
		return MaxRetryAfter
	default:
		return d
	}
}

// MaxMessage bounds a server message kept in a failure or an event: enough
// to explain, never a whole HTML page.
const MaxMessage = 300

// ShortMessage cuts a server message to MaxMessage bytes.
func ShortMessage(s string) string {
	if len(s) <= MaxMessage {
		return s
	}
	return s[:MaxMessage] + "…"
}
