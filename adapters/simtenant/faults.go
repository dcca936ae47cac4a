package simtenant

import (
	"sync"
	"time"
)

// Fault is what an injected fault does to one request.
type Fault struct {
	Drop       bool          // close the connection without a reply
	Delay      time.Duration // answer this much later
	Status     int           // answer with this server error instead (503, 504)
	RetryAfter time.Duration // with this Retry-After (0: none)
}

// FaultPlan decides, request by request, which of the tenant's faults hit.
// Both wire simulators use it, so a tenant file misbehaves the same way over
// Graph and EWS.
type FaultPlan struct {
	f         *Faults
	mu        sync.Mutex
	n         int
	stormLeft int
	replies   int
}

// NewFaultPlan plans faults; a nil Faults never injects one.
func NewFaultPlan(f *Faults) *FaultPlan { return &FaultPlan{f: f} }

// Next counts one request and returns its fault (the zero Fault for none).
func (p *FaultPlan) Next() Fault {
	if p.f == nil {
		return Fault{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	var out Fault
	if st := p.f.Storm; st != nil {
		if p.stormLeft == 0 && p.n%st.Every == 0 {
			p.stormLeft = st.Length
		}
		if p.stormLeft > 0 {
			p.stormLeft--
			out.Status, out.RetryAfter = st.Status, time.Duration(st.RetryAfter)
		}
	}
	if p.f.Drop != nil && p.n%p.f.Drop.Every == 0 {
		out.Drop = true
	}
	if p.f.Slow != nil && p.n%p.f.Slow.Every == 0 {
		out.Delay = time.Duration(p.f.Slow.Delay)
	}
	return out
}

// TruncateReply counts one successful reply and says whether to cut it off.
func (p *FaultPlan) TruncateReply() bool {
	if p.f == nil || p.f.Truncate == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replies++
	return p.replies%p.f.Truncate.Every == 0
}
