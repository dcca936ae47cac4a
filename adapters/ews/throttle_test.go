package ews

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/rs/zerolog"

	"github.com/mailvault/mailvault/adapters/credential"
	"github.com/mailvault/mailvault/adapters/eventlog"
	"github.com/mailvault/mailvault/adapters/ewssim"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
	"github.com/mailvault/mailvault/pipeline"
	"github.com/mailvault/mailvault/projections"
)

// manualClock is shared by the engine and the simulator: time moves only
// when the test says so, and timers fire then.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *manualClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *manualClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool { c.mu.Lock(); defer c.mu.Unlock(); was := !t.stopped; t.stopped = true; return was }
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*manualTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

type nowhere struct{}

func (nowhere) Put(_ domain.ItemKey, b []byte) (domain.PutResult, error) {
	return domain.PutResult{Size: int64(len(b))}, nil
}

// ErrorServerBusy with BackOffMilliseconds 300000 parks the folder for
// exactly five minutes of the injected clock while the other folder is backed
// up, and the account's concurrency never exceeds EWSMaxConcurrency.
func TestServerBusyParksExactlyAndConcurrencyHolds(t *testing.T) {
	tn, err := simtenant.Parse([]byte(`seed: 6
ews: {max_concurrency: 3, backoff: 5m}
mailboxes:
  - address: rosa@contoso.test
    folders:
      - path: Inbox
        items: 300
        throttle: {items: 100, window: 5m}
        size: {min: 1KB, max: 2KB}
      - path: Archive
        items: 600
        size: {min: 1KB, max: 2KB}
`))
	if err != nil {
		t.Fatal(err)
	}
	clock := &manualClock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	sim := ewssim.New(tn, ewssim.Options{Now: clock.Now})
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ConnContext = ewssim.ConnContext
	srv.Start()
	defer srv.Close()
	user, pass := sim.Account()
	src, err := NewSource(Config{URL: srv.URL + "/EWS/Exchange.asmx", Auth: AuthNTLM, Username: user, Secret: credential.New(pass),
		Impersonate: true, Mailboxes: []string{"rosa@contoso.test"}})
	if err != nil {
		t.Fatal(err)
	}
	lg, err := eventlog.Open(eventlog.Options{InMemory: true, Hooks: []eventlog.Hook{projections.ResumeHook}})
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	cfg := pipeline.DefaultConfig()
	cfg.Run, cfg.ThrottlePatience = "busy", time.Hour
	cfg.Limits.AppMaxInFlight = 3 // EWSMaxConcurrency of the account
	// The planner's parks are what is tested, on a clock the test moves;
	// the pacer's holds are tested on their own (pipeline, domain).
	cfg.Pace = false
	deps := pipeline.Deps{Publisher: lg.Publisher(),
		Subscriber: func(group string, n int) message.Subscriber {
			return lg.Subscriber(eventlog.SubscriberConfig{ConsumerGroup: group, MaxInFlight: n})
		},
		Source: src, Storage: nowhere{}, Resume: projections.Resume{Log: lg}, Dedup: lg, Clock: clock, Log: zerolog.Nop()}
	done := make(chan domain.RunState, 1)
	go func() {
		st, err := pipeline.Run(context.Background(), deps, cfg)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	events := func() []domain.Event {
		var out []domain.Event
		projections.ScanRun(lg, cfg.Run, func(ev *domain.Event) error { out = append(out, *ev); return nil })
		return out
	}
	waitFor := func(match func(domain.Event) bool, what string) domain.Event {
		deadline := time.After(60 * time.Second)
		for {
			changed := lg.Changed()
			for _, ev := range events() {
				if match(ev) {
					return ev
				}
			}
			select {
			case <-changed:
			case <-deadline:
				for _, ev := range events() {
					t.Logf("%s %s %s %v %s %s %d", ev.Time.Format("15:04:05"), ev.Type, ev.Folder, ev.Batch, ev.Class, ev.Code, ev.RetryAfterMS)
				}
				t.Fatalf("no %s", what)
			}
		}
	}
	thr := waitFor(func(ev domain.Event) bool { return ev.Type == domain.Throttled && ev.Folder == "Inbox" }, "throttled Inbox")
	if thr.RetryAfterMS != 300_000 || thr.Code != "ErrorServerBusy" {
		t.Fatalf("throttle %+v", thr)
	}
	parked := waitFor(func(ev domain.Event) bool { return ev.Type == domain.FolderParked && ev.Folder == "Inbox" }, "parked Inbox")
	if want := clock.Now().Add(5 * time.Minute); !parked.Until.Equal(want) {
		t.Fatalf("parked until %v, want exactly 5 minutes from the throttle: %v", parked.Until, want)
	}
	waitFor(func(ev domain.Event) bool { return ev.Type == domain.FolderCompleted && ev.Folder == "Archive" }, "Archive completed while the Inbox waits")
	clock.Advance(5*time.Minute - time.Second)
	for _, ev := range events() {
		if ev.Type == domain.FolderResumed {
			t.Fatal("the Inbox resumed before its back-off")
		}
	}
	for i := 0; i < 10; i++ {
		clock.Advance(5 * time.Minute)
		select {
		case st := <-done:
			if st != domain.StateFinished {
				t.Fatalf("state %s", st)
			}
			rep, _ := projections.BuildReport(lg, cfg.Run)
			if rep.ItemsStored != 900 {
				t.Fatalf("stored %d", rep.ItemsStored)
			}
			if m := sim.Stats().MaxInFlight; m > 3 {
				t.Fatalf("the server saw %d requests at once; EWSMaxConcurrency is 3", m)
			}
			return
		case <-time.After(2 * time.Second):
		}
	}
	t.Fatal("the run did not finish")
}

// A throttle says whose budget it was charged to: the target mailbox's
// with application impersonation, the service account's without.
func TestServerBusySaysWhoseBudget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>`+
			`<faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode><faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring>`+
			`<detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">The server cannot service this request right now. Try again later.</e:Message>`+
			`<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>`)
	}))
	defer srv.Close()
	for _, c := range []struct {
		impersonate bool
		want        string
	}{{true, domain.BudgetMailbox}, {false, domain.BudgetApp}} {
		src, err := NewSource(Config{URL: srv.URL + "/EWS/Exchange.asmx", Auth: AuthBasic, Username: "svc@contoso.test", Secret: credential.New("pw"),
			Mailboxes: []string{"nina@contoso.test"}, Impersonate: c.impersonate, HTTP: srv.Client()})
		if err != nil {
			t.Fatal(err)
		}
		_, err = src.t.call(context.Background(), src.impersonation("nina@contoso.test"), getFolderRequest(nil))
		var f *domain.Failure
		if !errors.As(err, &f) || f.Class != domain.ClassThrottled || f.RetryAfter != 297749*time.Millisecond || f.Budget != c.want {
			t.Errorf("impersonating %v: %#v, want a throttle of %s's budget", c.impersonate, err, c.want)
		}
	}
}
