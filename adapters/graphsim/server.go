package graphsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailvault/mailvault/adapters/simentra"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

// Credentials are the app registration the simulator accepts.
type Credentials = simentra.Credentials

// graphResource is the resource Graph's tokens must be issued for.
const graphResource = "https://graph.microsoft.com"

// Options configure a Server.
type Options struct {
	Credentials Credentials // empty fields are generated
	// TokenTTL is the lifetime of issued tokens (default 3599s, as Entra).
	TokenTTL time.Duration
	Now      func() time.Time
}

// Stats are the simulator's own counts: what it received and answered.
type Stats struct {
	Requests    int            `json:"requests"`     // HTTP requests to Graph URLs
	Subrequests int            `json:"subrequests"`  // $batch sub-requests
	Units       int            `json:"budget_units"` // requests counted against limits
	Throttled   int            `json:"throttled"`    // 429 answers, top level and inside batches
	ByStatus    map[string]int `json:"by_status"`
	Tokens      int            `json:"tokens_issued"`
	// Invitations counts events created with attendees: Graph would have
	// sent each attendee an invitation.
	Invitations int                     `json:"invitations_sent"`
	Mailboxes   map[string]MailboxStats `json:"mailboxes"`
	// AppUtilisation is Utilisation for the tenant-wide (global) limit,
	// when there is one.
	AppUtilisation float64 `json:"app_utilisation,omitempty"`
}

// MailboxStats count per mailbox.
type MailboxStats struct {
	Units     int `json:"budget_units"`
	Throttled int `json:"throttled"`
	Items     int `json:"items_served"`
	// Utilisation is the share of the window budget used while work
	// remained (see utilisation); -1 when it all fitted in one window.
	Utilisation float64 `json:"utilisation"`
}

// Server is the simulated Graph service. It implements http.Handler.
type Server struct {
	t     *simtenant.Tenant
	entra *simentra.Entra
	creds Credentials
	now   func() time.Time

	mu    sync.Mutex
	store *simtenant.Store
	// streamsAhead are generated items' streams made at start
	// (graph.streams_ahead), by item version.
	streamsAhead map[streamKey][]byte
	mailboxes    []*mailbox
	byKey        map[string]*mailbox
	byBox        map[*simtenant.Box]*mailbox
	global       *domain.SlidingWindow
	epoch        int
	faults       *simtenant.FaultPlan
	stats        Stats
	export       bool
	resync       string
	// mailboxFolders: the app holds MailboxFolder.Read.All.
	mailboxFolders bool
	// firstAdmitted starts the tenant's load curve; capacity is the share
	// of the limits it grants now.
	firstAdmitted time.Time
	capacity      float64
	admittedApp   []time.Time // budget units admitted under a global limit

	restored map[string]*restoredMessage // messages created from JSON, by id
	uploads  map[string]*uploadSession
	imports  map[string]importTarget
}

// New builds a server for tenant t.
func New(t *simtenant.Tenant, o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	entra := simentra.New(o.Credentials, o.TokenTTL, o.Now, t.Domains())
	s := &Server{t: t, entra: entra, creds: entra.Credentials(), now: o.Now, byKey: map[string]*mailbox{},
		byBox: map[*simtenant.Box]*mailbox{}, store: simtenant.NewStore(t), faults: simtenant.NewFaultPlan(t.Faults),
		export: true, mailboxFolders: true, resync: "SyncStateNotFound", stats: Stats{ByStatus: map[string]int{}},
		restored: map[string]*restoredMessage{}, uploads: map[string]*uploadSession{}, imports: map[string]importTarget{}}
	if g := t.Graph; g != nil {
		if g.ExportItems != nil {
			s.export = *g.ExportItems
		}
		if g.MailboxFolders != nil {
			s.mailboxFolders = *g.MailboxFolders
		}
		if g.ResyncCode != "" {
			s.resync = g.ResyncCode
		}
	}
	if t.Global != nil {
		s.global = domain.NewSlidingWindow(t.Global.Requests, time.Duration(t.Global.Window))
	}
	for _, b := range s.store.Mailboxes {
		m := newMailbox(t, b)
		s.mailboxes = append(s.mailboxes, m)
		s.byBox[b] = m
		s.byKey[strings.ToLower(m.Address)] = m
		s.byKey[m.ID] = m
		s.byKey[strings.ToLower(m.exchangeID)] = m
		if b.Archive != nil {
			m.archive = newMailbox(t, b.Archive)
			s.byBox[b.Archive] = m.archive
			s.byKey[strings.ToLower(m.archive.exchangeID)] = m.archive
		}
	}
	if t.Graph != nil && t.Graph.StreamsAhead {
		s.makeStreamsAhead()
	}
	return s
}

// Credentials returns the app registration the server accepts.
func (s *Server) Credentials() Credentials { return s.creds }

func randomHex(n int) string { return simentra.RandomHex(n) }

// applyLoad scales the request limits to the tenant's load curve at now.
func (s *Server) applyLoad(now time.Time) {
	c := 1.0
	if !s.firstAdmitted.IsZero() {
		c = s.t.Capacity(now.Sub(s.firstAdmitted))
	}
	if c == s.capacity {
		return
	}
	s.capacity = c
	for _, m := range s.mailboxes {
		m.window.SetLimit(int(float64(s.t.Limits.Requests) * c))
	}
	if s.global != nil {
		s.global.SetLimit(int(float64(s.t.Global.Requests) * c))
	}
}

// Stats returns a snapshot of the counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Tokens = s.entra.Issued()
	st.ByStatus = map[string]int{}
	for k, v := range s.stats.ByStatus {
		st.ByStatus[k] = v
	}
	st.Mailboxes = map[string]MailboxStats{}
	limit, window := s.t.Limits.Requests, time.Duration(s.t.Limits.Window)
	if s.global != nil {
		st.AppUtilisation = s.utilisation(s.admittedApp, s.t.Global.Requests, time.Duration(s.t.Global.Window))
	}
	for _, m := range s.mailboxes {
		ms := m.stats
		ms.Utilisation = s.utilisation(m.admitted, limit, window)
		st.Mailboxes[m.Address] = ms
	}
	return st
}

// utilisation is the share of the budget used while work remained: over the
// whole windows between the first admitted request and the last one (the
// last, partial window is when the work ran out). -1 when everything fitted
// in one window, so the budget never was the limit.
// With a load curve the budget of each stretch of time is the capacity
// granted then.
func (s *Server) utilisation(admitted []time.Time, limit int, window time.Duration) float64 {
	if len(admitted) == 0 {
		return -1
	}
	first := admitted[0]
	k := int(admitted[len(admitted)-1].Sub(first) / window)
	if k == 0 {
		return -1
	}
	end := first.Add(time.Duration(k) * window)
	n := 0
	for _, t := range admitted {
		if t.Before(end) {
			n++
		}
	}
	budget := float64(k * limit)
	if len(s.t.Load) > 0 {
		budget = simtenant.Granted(first, end, float64(limit)/window.Seconds(), s.t.CapacityAt(s.firstAdmitted))
	}
	return float64(n) / budget
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.entra.Route(w, r):
		return
	case strings.HasPrefix(r.URL.Path, "/_sim/"):
		s.control(w, r)
		return
	case strings.HasPrefix(r.URL.Path, "/uploadsession/") && r.Method == http.MethodPut:
		s.upload(w, r)
		return
	case strings.HasPrefix(r.URL.Path, "/importsession/") && r.Method == http.MethodPost:
		s.importItem(w, r)
		return
	}
	if os.Getenv("GRAPHSIM_TRACE") != "" {
		fmt.Fprintln(os.Stderr, "graphsim:", r.Method, r.URL.String())
	}
	version, rest, ok := splitVersion(r.URL.EscapedPath())
	if !ok {
		s.write(w, r, errorReply(http.StatusNotFound, "UnknownError", "Resource not found for the segment '"+firstSegment(r.URL.Path)+"'."))
		return
	}
	s.count(func() { s.stats.Requests++ })
	if rep := s.authenticate(r); rep != nil {
		s.write(w, r, rep)
		return
	}
	if s.fault(w, r) {
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	c := &call{method: r.Method, version: version, path: rest, query: r.URL.Query(), header: r.Header, ctx: r.Context(), base: scheme + "://" + r.Host}
	if r.Body != nil {
		body, err := readBody(r)
		if err != nil {
			s.write(w, r, errorReply(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", err.Error()))
			return
		}
		c.body = body
	}
	var rep *reply
	if rest == "$batch" {
		rep = s.batch(c)
	} else {
		rep = s.dispatch(c)
	}
	s.write(w, r, rep)
}

func firstSegment(p string) string {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return p
}

// splitVersion takes /v1.0/... or /beta/... apart.
func splitVersion(p string) (version, rest string, ok bool) {
	p = strings.TrimPrefix(p, "/")
	for _, v := range []string{"v1.0", "beta"} {
		if strings.HasPrefix(p, v+"/") {
			return v, p[len(v)+1:], true
		}
	}
	return "", "", false
}

func (s *Server) count(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
}

// reply is an answer of the simulator, top level or inside a $batch.
type reply struct {
	status int
	header http.Header
	body   []byte // JSON unless header says otherwise
}

func newReply(status int) *reply {
	return &reply{status: status, header: http.Header{}}
}

// Graph's JSON content type.
const jsonType = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

func jsonReply(status int, v any) *reply {
	rep := newReply(status)
	b, err := json.Marshal(v)
	if err != nil {
		return errorReply(http.StatusInternalServerError, "UnknownError", err.Error())
	}
	rep.body = b
	rep.header.Set("Content-Type", jsonType)
	return rep
}

type graphError struct {
	Error graphErrorBody `json:"error"`
}

type graphErrorBody struct {
	Code       string         `json:"code"`
	Message    string         `json:"message"`
	InnerError map[string]any `json:"innerError,omitempty"`
}

func errorReply(status int, code, msg string) *reply {
	return jsonReply(status, graphError{Error: graphErrorBody{Code: code, Message: msg,
		InnerError: map[string]any{"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": simtenant.GUID("req", randomHex(4)),
			"client-request-id": simtenant.GUID("creq", randomHex(4))}}})
}

// throttled is Graph's 429 with a Retry-After in seconds (fractional, as
// Exchange Online sends them).
func throttled(code, msg string, wait time.Duration) *reply {
	rep := errorReply(http.StatusTooManyRequests, code, msg)
	rep.header.Set("Retry-After", formatRetryAfter(wait))
	return rep
}

func formatRetryAfter(d time.Duration) string {
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, rep *reply) {
	s.answered(rep.status)
	h := w.Header()
	for k, v := range rep.header {
		h[k] = v
	}
	h.Set("request-id", simtenant.GUID("req", randomHex(4)))
	if id := r.Header.Get("client-request-id"); id != "" {
		h.Set("client-request-id", id)
	}
	h.Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"SIM"}}`)
	h.Set("Strict-Transport-Security", "max-age=31536000")
	if s.truncate(rep) {
		// Announce the whole body, send half, and close: the client sees a
		// truncated reply, as after a dropped connection mid-transfer.
		h.Set("Content-Length", strconv.Itoa(len(rep.body)))
		w.WriteHeader(rep.status)
		_, _ = w.Write(rep.body[:len(rep.body)/2])
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
		return
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(rep.body)
}

// answered counts a reply, top level or inside a $batch.
func (s *Server) answered(status int) {
	s.count(func() {
		s.stats.ByStatus[strconv.Itoa(status)]++
		if status == http.StatusTooManyRequests {
			s.stats.Throttled++
		}
	})
}

func (s *Server) truncate(rep *reply) bool {
	return rep.status == http.StatusOK && len(rep.body) >= 2 && s.faults.TruncateReply()
}

// fault applies the tenant's injected faults to a top-level request; true
// means the request has been answered (or dropped).
func (s *Server) fault(w http.ResponseWriter, r *http.Request) bool {
	f := s.faults.Next()
	if f.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if f.Status == 0 {
		return false
	}
	// A 503 storm has an empty body (Graph's own timeout); a 504 comes as a
	// proxy's HTML page.
	rep := newReply(f.Status)
	if f.Status == http.StatusGatewayTimeout {
		rep.body = []byte("<html><head><title>504 Gateway Time-out</title></head><body><h1>Gateway Time-out</h1></body></html>")
		rep.header.Set("Content-Type", "text/html")
	}
	if f.RetryAfter > 0 {
		rep.header.Set("Retry-After", formatRetryAfter(f.RetryAfter))
	}
	s.write(w, r, rep)
	return true
}

// authenticate checks the bearer token.
func (s *Server) authenticate(r *http.Request) *reply {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	var rep *reply
	switch {
	case h == "":
		rep = errorReply(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
	case !ok:
		rep = errorReply(http.StatusUnauthorized, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.).")
	default:
		switch s.entra.Check(tok, graphResource) {
		case simentra.TokenUnknown:
			rep = errorReply(http.StatusUnauthorized, "InvalidAuthenticationToken", "IDX10511: Signature validation failed.")
		case simentra.TokenWrongAudience:
			rep = errorReply(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		case simentra.TokenExpired:
			rep = errorReply(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		default:
			return nil
		}
	}
	rep.header.Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	return rep
}

// ExpireTokens makes every issued token expired (tests of the 401 path).
func (s *Server) ExpireTokens() { s.entra.Expire() }

// throttlePush is graph.throttle_push (0: off).
func (s *Server) throttlePush() time.Duration {
	if s.t.Graph == nil {
		return 0
	}
	return time.Duration(s.t.Graph.ThrottlePush)
}

// admit applies the app+mailbox limits (and the global one) to one unit of
// work. The returned release must be called when the work is done.
func (s *Server) admit(m *mailbox) (release func(), rep *reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.applyLoad(now)
	reject := func(r *reply) (func(), *reply) {
		if m != nil {
			m.stats.Throttled++
		}
		return nil, r
	}
	if s.global != nil {
		if wait := s.global.Wait(now); wait > 0 {
			return reject(throttled("ApplicationThrottled", "Application is over its tenant-wide request limit.", wait))
		}
	}
	if m != nil {
		if push := s.throttlePush(); push > 0 && now.Before(m.blockedUntil) {
			m.blockedUntil = m.blockedUntil.Add(push)
			return reject(throttled("ApplicationThrottled", "Application is over its MailboxRequestRate limit.", m.blockedUntil.Sub(now)))
		}
		if m.inFlight >= s.t.Limits.Concurrency {
			return reject(throttled("ApplicationThrottled", "Application is over its MailboxConcurrency limit.", time.Second))
		}
		if wait := m.window.Wait(now); wait > 0 {
			if until := now.Add(wait); until.After(m.blockedUntil) {
				m.blockedUntil = until
			}
			return reject(throttled("ApplicationThrottled", "Application is over its MailboxRequestRate limit.", wait))
		}
		m.window.Add(now)
		m.inFlight++
		m.stats.Units++
		m.admitted = append(m.admitted, now)
	}
	if s.global != nil {
		s.global.Add(now)
		s.admittedApp = append(s.admittedApp, now)
	}
	if s.firstAdmitted.IsZero() {
		s.firstAdmitted = now
	}
	s.stats.Units++
	return func() {
		if m != nil {
			s.mu.Lock()
			m.inFlight--
			s.mu.Unlock()
		}
	}, nil
}

// control is the simulator's own API for tests: change a folder, expire
// delta tokens, read the stats. It needs the client secret.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	simtenant.Control{Secret: s.creds.ClientSecret, Stats: func() any { return s.Stats() }, Mutate: s.Mutate,
		ExpirePath: "/_sim/expire-deltas", Expire: s.ExpireDeltas}.ServeHTTP(w, r)
}

// MutateRequest changes one folder (see Server.Mutate).
type MutateRequest = simtenant.MutateRequest

// Mutate modifies the first Modify live items of a folder, deletes the next
// Delete and appends Add new ones, as a user working in the mailbox would.
func (s *Server) Mutate(req MutateRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byKey[strings.ToLower(req.Mailbox)] == nil {
		return fmt.Errorf("no mailbox %s", req.Mailbox)
	}
	return s.store.MutateByPath(req)
}

// ExpireDeltas invalidates every delta and skip token handed out so far.
func (s *Server) ExpireDeltas() {
	s.mu.Lock()
	s.epoch++
	s.mu.Unlock()
}
