// Package ewssim is an Exchange Server (EWS) simulator: it serves a
// simtenant model at /EWS/Exchange.asmx as SOAP 1.1 with Basic and NTLM
// authentication, the operations a backup and a restore use
// (SyncFolderHierarchy, FindFolder, GetFolder, SyncFolderItems, ExportItems,
// GetItem, UploadItems), EWSMaxConcurrency and a request budget it enforces
// itself, Exchange's three shapes of throttling, per-item or per-request
// failures of dirty items, and injected faults.
package ewssim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailvault/mailvault/adapters/simentra"
	"github.com/mailvault/mailvault/adapters/simtenant"
	"github.com/mailvault/mailvault/domain"
)

const (
	nsSoap     = "http://schemas.xmlsoap.org/soap/envelope/"
	nsTypes    = "http://schemas.microsoft.com/exchange/services/2006/types"
	nsMessages = "http://schemas.microsoft.com/exchange/services/2006/messages"
	nsErrors   = "http://schemas.microsoft.com/exchange/services/2006/errors"
)

// Options configure a Server.
type Options struct {
	Username string // default svc-backup@<first mailbox's domain>
	Password string // default random
	Now      func() time.Time
	// RecordDir, when set, receives every request and response body element
	// as a file of its own, for validation against the EWS schemas.
	RecordDir string
}

// Stats are the simulator's own counts.
type Stats struct {
	Requests     int            `json:"requests"`
	Throttled    int            `json:"throttled"`
	MaxInFlight  int            `json:"max_in_flight"`
	ByOperation  map[string]int `json:"by_operation"`
	ByCode       map[string]int `json:"by_code"`
	AuthFailures int            `json:"auth_failures"`
	NTLMLogons   int            `json:"ntlm_logons"`
	// Penalties counts the blocks a throttling budget imposed (its
	// cutoff reached), across mailboxes.
	Penalties int                     `json:"penalties"`
	Mailboxes map[string]MailboxStats `json:"mailboxes,omitempty"`
}

// MailboxStats count per mailbox.
type MailboxStats struct {
	Requests  int `json:"requests"` // admitted against its budget
	Throttled int `json:"throttled"`
	Penalties int `json:"penalties"`
	// Utilisation is the share of the budget's recharge used while work
	// remained, after the first penalty (simtenant.Budget.Utilisation);
	// -1 when not measurable. Only with a budget.
	Utilisation float64 `json:"utilisation"`
}

// Server is the simulated Exchange Server. It implements http.Handler.
type Server struct {
	t        *simtenant.Tenant
	entra    *simentra.Entra // OAuth: Exchange Online's, or hybrid modern authentication
	username string
	password string
	now      func() time.Time
	record   string
	faults   *simtenant.FaultPlan
	maxConc  int
	shape    string
	backoff  time.Duration

	mu      sync.Mutex
	store   *simtenant.Store
	windows map[*simtenant.Box]*domain.SlidingWindow
	budgets map[*simtenant.Box]*boxBudget
	// storeRoots are the folders above each mailbox's tree (tree.go).
	storeRoots map[*simtenant.Box]*storeRoots
	// firstAdmitted starts the tenant's load curve; capacity is the share
	// of the limits it grants now.
	firstAdmitted time.Time
	capacity      float64
	inFlight      int
	epoch         int
	recN          int
	stats         Stats
}

// New builds a server for tenant t.
func New(t *simtenant.Tenant, o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Username == "" {
		domainPart := "contoso.test"
		if len(t.Mailboxes) > 0 {
			domainPart = t.Mailboxes[0].Address[strings.IndexByte(t.Mailboxes[0].Address, '@')+1:]
		}
		o.Username = "svc-backup@" + domainPart
	}
	if o.Password == "" {
		o.Password = simtenant.GUID("password", time.Now().String())[:23]
	}
	s := &Server{t: t, entra: simentra.New(simentra.Credentials{}, 0, o.Now, t.Domains()), username: o.Username, password: o.Password, now: o.Now, record: o.RecordDir,
		faults: simtenant.NewFaultPlan(t.Faults), maxConc: 27, shape: simtenant.ShapeServerBusy,
		store: simtenant.NewStore(t), windows: map[*simtenant.Box]*domain.SlidingWindow{}, budgets: map[*simtenant.Box]*boxBudget{}, storeRoots: map[*simtenant.Box]*storeRoots{}, capacity: 1,
		stats: Stats{ByOperation: map[string]int{}, ByCode: map[string]int{}}}
	if e := t.EWS; e != nil {
		if e.MaxConcurrency > 0 {
			s.maxConc = e.MaxConcurrency
		}
		s.shape, s.backoff = e.ThrottleShape, time.Duration(e.BackOff)
	}
	for _, b := range s.store.Boxes() {
		s.windows[b] = domain.NewSlidingWindow(t.Limits.Requests, time.Duration(t.Limits.Window))
		s.budgets[b] = &boxBudget{}
	}
	return s
}

// boxBudget is what a mailbox has spent.
type boxBudget struct {
	state     simtenant.BudgetState
	admitted  []time.Time
	throttled int
}

// budget is the tenant's throttling budget, nil for a request window.
func (s *Server) budget() *simtenant.Budget {
	if s.t.EWS == nil {
		return nil
	}
	return s.t.EWS.Budget
}

// applyLoad scales the request windows to the tenant's load curve at now
// (a budget reads the capacity as it recharges).
func (s *Server) applyLoad(now time.Time) {
	c := s.t.CapacityAt(s.firstAdmitted)(now)
	if c == s.capacity {
		return
	}
	s.capacity = c
	for _, w := range s.windows {
		w.SetLimit(int(float64(s.t.Limits.Requests) * c))
	}
}

// Account is the service account the server accepts.
func (s *Server) Account() (username, password string) { return s.username, s.password }

// Stats returns a snapshot of the counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByOperation, st.ByCode = map[string]int{}, map[string]int{}
	for k, v := range s.stats.ByOperation {
		st.ByOperation[k] = v
	}
	for k, v := range s.stats.ByCode {
		st.ByCode[k] = v
	}
	st.Mailboxes = map[string]MailboxStats{}
	for _, b := range s.store.Boxes() {
		bb := s.budgets[b]
		if len(bb.admitted) == 0 && bb.throttled == 0 {
			continue
		}
		ms := MailboxStats{Requests: len(bb.admitted), Throttled: bb.throttled, Penalties: bb.state.Penalties, Utilisation: -1}
		if bu := s.budget(); bu != nil {
			ms.Utilisation = bu.Utilisation(&bb.state, bb.admitted, s.t.CapacityAt(s.firstAdmitted))
		}
		name := b.Address
		if name == "" {
			name = "(public folders)"
		}
		st.Mailboxes[name] = ms
	}
	return st
}

// ExpireSyncStates invalidates every SyncState handed out so far.
func (s *Server) ExpireSyncStates() {
	s.mu.Lock()
	s.epoch++
	s.mu.Unlock()
}

// Mutate changes a folder ("" mailbox: a public folder).
func (s *Server) Mutate(mailbox, folder string, add, modify, del int) error {
	return s.mutate(simtenant.MutateRequest{Mailbox: mailbox, Folder: folder, Add: add, Modify: modify, Delete: del})
}

func (s *Server) mutate(req simtenant.MutateRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store.MutateByPath(req)
}

// connState is what the server remembers of one TCP connection: NTLM
// authenticates the connection, not the request, as IIS does.
type connState struct {
	mu            sync.Mutex
	challenge     [8]byte
	challenged    bool
	authenticated bool
}

type connKey struct{}

// ConnContext attaches a connection's state; set it as http.Server.ConnContext.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/_sim/"):
		s.control(w, r)
		return
	case s.entra.Route(w, r):
		return
	case !strings.EqualFold(r.URL.Path, "/EWS/Exchange.asmx"):
		http.NotFound(w, r)
		return
	}
	// IIS authenticates before anything else, whatever the method: some
	// clients carry NTLM's handshake on a GET and then POST on the same
	// connection.
	if !s.authenticate(w, r) {
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodHead:
		// An ASMX service answers a GET with its description page.
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<html><head><title>Service</title></head><body><p>You have created a service. The service description is at <a href="Services.wsdl">Services.wsdl</a>.</p></body></html>`)
		return
	default:
		w.Header().Set("Allow", "POST, GET")
		http.Error(w, "EWS takes SOAP requests by POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return
	}
	if f := s.faults.Next(); f.Drop || f.Delay > 0 || f.Status != 0 {
		if s.fault(w, r, f) {
			return
		}
	}
	s.mu.Lock()
	s.stats.Requests++
	if s.inFlight >= s.maxConc {
		s.stats.Throttled++
		s.mu.Unlock()
		s.writeFault(w, http.StatusInternalServerError, "ErrorExceededConnectionCount",
			"You have exceeded the available concurrent connections for your account.  Try again once your other requests have completed.", 0)
		return
	}
	s.inFlight++
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, s.inFlight)
	s.mu.Unlock()
	// The request stops counting when its answer starts: a client that
	// waits for the answer before sending the next request must never be
	// told it exceeded the limit.
	rw := &releasingWriter{ResponseWriter: w, release: func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}}
	defer rw.done()
	w = rw
	if d := time.Duration(s.t.Latency); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	s.handle(w, r, body)
}

// releasingWriter runs release once, when the reply starts or the handler
// returns.
type releasingWriter struct {
	http.ResponseWriter
	release func()
	once    sync.Once
}

func (w *releasingWriter) done() { w.once.Do(w.release) }

func (w *releasingWriter) WriteHeader(status int) {
	w.done()
	w.ResponseWriter.WriteHeader(status)
}

func (w *releasingWriter) Write(b []byte) (int, error) {
	w.done()
	return w.ResponseWriter.Write(b)
}

// Hijack lets faults drop the connection.
func (w *releasingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.done()
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("the connection cannot be taken over")
	}
	return hj.Hijack()
}

// authenticate accepts Basic and NTLM for the service account. It answers
// the request itself (401 and challenges) when it returns false.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) bool {
	cs, _ := r.Context().Value(connKey{}).(*connState)
	if cs == nil {
		cs = &connState{}
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	h := r.Header.Get("Authorization")
	// A 401 reads the request body first, as IIS does, so the connection
	// (and with it the NTLM handshake) survives a large POST; Go's server
	// would otherwise close it after an unread body of more than 256 KB.
	drain := func() { io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20)) }
	refuse := func() bool {
		drain()
		w.Header().Add("WWW-Authenticate", "Negotiate")
		w.Header().Add("WWW-Authenticate", "NTLM")
		w.Header().Add("WWW-Authenticate", `Basic realm="`+r.Host+`"`)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "<html><head><title>401 - Unauthorized</title></head><body><h1>401 - Unauthorized: Access is denied due to invalid credentials.</h1></body></html>")
		return false
	}
	switch {
	case h == "" && cs.authenticated:
		return true
	case strings.HasPrefix(h, "Bearer "):
		return s.bearer(w, r, strings.TrimPrefix(h, "Bearer "), drain)
	case strings.HasPrefix(h, "Basic "):
		u, p, ok := r.BasicAuth()
		if ok && s.isAccount(u, "") && p == s.password {
			return true
		}
		s.count(func() { s.stats.AuthFailures++ })
		return refuse()
	case strings.HasPrefix(h, "NTLM ") || strings.HasPrefix(h, "Negotiate "):
		scheme, tok, _ := strings.Cut(h, " ")
		msg, err := base64.StdEncoding.DecodeString(strings.TrimSpace(tok))
		if err != nil {
			return refuse()
		}
		switch messageType(msg) {
		case 1:
			drain()
			chal, server := challenge(s.netbiosDomain())
			cs.challenge, cs.challenged, cs.authenticated = server, true, false
			w.Header().Set("WWW-Authenticate", scheme+" "+base64.StdEncoding.EncodeToString(chal))
			w.WriteHeader(http.StatusUnauthorized)
			return false
		case 3:
			if cs.challenged && verify(msg, cs.challenge, s.isAccount, s.password) == nil {
				cs.authenticated, cs.challenged = true, false
				s.count(func() { s.stats.NTLMLogons++ })
				return true
			}
			cs.challenged = false
			s.count(func() { s.stats.AuthFailures++ })
			return refuse()
		}
		return refuse()
	}
	return refuse()
}

// ewsResources are the resources an EWS token may be issued for: Exchange
// Online's, or (hybrid modern authentication) the server's own URL.
func ewsResources(r *http.Request) []string {
	return []string{"https://outlook.office365.com", "https://" + r.Host}
}

// bearer accepts an OAuth token the simulator's Entra issued for EWS; a
// bad one is answered as Exchange Online does: 401 with the reason in
// x-ms-diagnostics.
func (s *Server) bearer(w http.ResponseWriter, r *http.Request, tok string, drain func()) bool {
	problem := simentra.TokenUnknown
	for _, res := range ewsResources(r) {
		if p := s.entra.Check(tok, res); p == simentra.TokenValid || p > problem {
			problem = p
		}
		if problem == simentra.TokenValid {
			return true
		}
	}
	drain()
	reason := map[simentra.TokenProblem]string{simentra.TokenUnknown: "The token is invalid.", simentra.TokenWrongAudience: "The audience claim value is invalid for current resource.",
		simentra.TokenExpired: "The token has expired."}[problem]
	s.count(func() { s.stats.AuthFailures++ })
	w.Header().Set("WWW-Authenticate", `Bearer client_id="00000002-0000-0ff1-ce00-000000000000", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="invalid_token"`)
	w.Header().Set("x-ms-diagnostics", `2000001;reason="`+reason+`";error_category="invalid_token"`)
	w.WriteHeader(http.StatusUnauthorized)
	return false
}

// netbiosDomain is the account's domain as Windows names it down-level: the
// first label of its DNS domain, in capitals (contoso.test: CONTOSO).
func (s *Server) netbiosDomain() string {
	_, dns, _ := strings.Cut(s.username, "@")
	label, _, _ := strings.Cut(dns, ".")
	if label == "" {
		return "CONTOSO"
	}
	return strings.ToUpper(label)
}

// isAccount says whether a logon name (and the domain a client sent apart,
// as NTLM does) is the service account's: its user principal name
// (svc-backup@contoso.test), or the down-level logon name Windows clients
// and the README use (CONTOSO\svc-backup, the domain in its NetBIOS or DNS
// form), or the bare user name.
func (s *Server) isAccount(user, domain string) bool {
	if d, u, ok := strings.Cut(user, `\`); ok && domain == "" {
		domain, user = d, u
	}
	local, dns, _ := strings.Cut(s.username, "@")
	domainOK := domain == "" || strings.EqualFold(domain, dns) || strings.EqualFold(domain, s.netbiosDomain())
	return domainOK && (strings.EqualFold(user, s.username) || strings.EqualFold(user, local))
}

func (s *Server) count(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
}

// fault applies an injected fault; true means the request was answered.
func (s *Server) fault(w http.ResponseWriter, r *http.Request, f simtenant.Fault) bool {
	if f.Drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return true
		}
	}
	if f.Status == 0 {
		return false
	}
	w.Header().Set("Content-Type", "text/html")
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(f.RetryAfter.Seconds()+0.999)))
	}
	w.WriteHeader(f.Status)
	fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", f.Status, http.StatusText(f.Status))
	return true
}

// request is a parsed SOAP request.
type request struct {
	version     string
	impersonate string
	op          string
	body        []byte // the operation element
}

func parseRequest(b []byte) (*request, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	req := &request{}
	var path []string
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("the request is not a SOAP envelope: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			path = append(path, t.Name.Local)
			switch {
			case len(path) == 1 && (t.Name.Local != "Envelope" || t.Name.Space != nsSoap):
				return nil, fmt.Errorf("the root element is %s, not a SOAP 1.1 Envelope", t.Name.Local)
			case t.Name.Local == "RequestServerVersion":
				for _, a := range t.Attr {
					if a.Name.Local == "Version" {
						req.version = a.Value
					}
				}
			case (t.Name.Local == "SmtpAddress" || t.Name.Local == "PrimarySmtpAddress" || t.Name.Local == "PrincipalName") && len(path) > 2 && path[len(path)-2] == "ConnectingSID":
				var v string
				if err := d.DecodeElement(&v, &t); err != nil {
					return nil, err
				}
				req.impersonate = strings.TrimSpace(v)
				path = path[:len(path)-1]
			case len(path) == 3 && path[1] == "Body":
				if err := d.Skip(); err != nil {
					return nil, err
				}
				req.op, req.body = t.Name.Local, b[start:d.InputOffset()]
				return req, nil
			}
		case xml.EndElement:
			path = path[:len(path)-1]
		}
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := parseRequest(body)
	if err != nil {
		s.writeFault(w, http.StatusInternalServerError, "ErrorSchemaValidation", "The request failed schema validation: "+err.Error(), 0)
		return
	}
	s.recordXML("request", req.op, req.body)
	s.count(func() { s.stats.ByOperation[req.op]++ })
	switch {
	case req.version == "":
		// Exchange treats a request without RequestServerVersion as
		// Exchange2007's.
	case !strings.HasPrefix(req.version, "Exchange20") && !strings.HasPrefix(req.version, "V20"):
		s.writeFault(w, http.StatusInternalServerError, "ErrorInvalidServerVersion", "The specified server version is invalid: "+req.version, 0)
		return
	}
	if req.impersonate != "" && s.store.Box(req.impersonate) == nil {
		s.writeFault(w, http.StatusInternalServerError, "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.", 0)
		return
	}
	ctx := &opContext{s: s, req: req}
	var out string
	var busy *throttle
	switch req.op {
	case "GetFolder":
		out, busy = s.getFolder(ctx)
	case "SyncFolderHierarchy":
		out, busy = s.syncFolderHierarchy(ctx)
	case "FindFolder":
		out, busy = s.findFolder(ctx)
	case "SyncFolderItems":
		out, busy = s.syncFolderItems(ctx)
	case "ExportItems":
		out, busy = s.exportItems(ctx)
	case "GetItem":
		out, busy = s.getItem(ctx)
	case "UploadItems":
		out, busy = s.uploadItems(ctx)
	case "CreateFolder":
		out, busy = s.createFolder(ctx)
	case "DeleteItem":
		out, busy = s.deleteItem(ctx)
	case "ConvertId":
		out, busy = s.convertId(ctx)
	case "FindItem":
		out, busy = s.findItem(ctx)
	default:
		s.writeFault(w, http.StatusInternalServerError, "ErrorInvalidRequest", "The request is invalid: operation "+req.op+" is not supported by this server.", 0)
		return
	}
	if ctx.fault != nil {
		s.writeFault(w, http.StatusInternalServerError, ctx.fault.code, ctx.fault.text, 0)
		return
	}
	if busy != nil {
		s.writeThrottled(w, req.op, busy.wait, ctx.count)
		return
	}
	if ctx.delay > 0 {
		// A budget in debt: Exchange answers, but late.
		select {
		case <-time.After(ctx.delay):
		case <-r.Context().Done():
			return
		}
	}
	s.writeBody(w, http.StatusOK, req.op, out)
}

// throttle says the server is over a limit for this long.
type throttle struct{ wait time.Duration }

type faultReply struct{ code, text string }

// opContext is one operation being served.
type opContext struct {
	s     *Server
	req   *request
	count int // response messages the operation would have had
	fault *faultReply
	delay time.Duration // micro-delay before the answer
}

// admit charges one request to the target mailbox's budget (its window,
// or its throttling budget). Called with s.mu held.
func (c *opContext) admit(b *simtenant.Box) *throttle {
	s := c.s
	if b == nil {
		return nil
	}
	if b.ArchiveOf != nil {
		b = b.ArchiveOf // EWS budgets are the account's: an archive's requests count as its mailbox's
	}
	now := s.now()
	s.applyLoad(now)
	bb := s.budgets[b]
	refuse := func(wait time.Duration) *throttle {
		s.stats.Throttled++
		bb.throttled++
		return &throttle{wait: wait}
	}
	if bu := s.budget(); bu != nil {
		delay, refused, penalty := bu.Admit(&bb.state, now, s.capacity)
		if penalty {
			s.stats.Penalties++
		}
		if refused > 0 {
			return refuse(refused)
		}
		c.delay = max(c.delay, delay)
	} else {
		w := s.windows[b]
		if wait := w.Wait(now); wait > 0 {
			if s.backoff > 0 {
				wait = s.backoff
			}
			return refuse(wait)
		}
		w.Add(now)
	}
	bb.admitted = append(bb.admitted, now)
	if s.firstAdmitted.IsZero() {
		s.firstAdmitted = now
	}
	return nil
}

func serverVersionHeader() string {
	return `<soap:Header><h:ServerVersionInfo xmlns:h="` + nsTypes + `" MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4" Version="V2017_07_11"/></soap:Header>`
}

// writeBody sends a response whose body element is op+"Response" around
// the response messages.
func (s *Server) writeBody(w http.ResponseWriter, status int, op, messages string) {
	el := `<m:` + op + `Response xmlns:m="` + nsMessages + `" xmlns:t="` + nsTypes + `"><m:ResponseMessages>` + messages + `</m:ResponseMessages></m:` + op + `Response>`
	s.recordXML("response", op+"Response", []byte(el))
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="` + nsSoap + `">`)
	b.WriteString(serverVersionHeader())
	b.WriteString(`<soap:Body>` + el + `</soap:Body></soap:Envelope>`)
	if s.faults.TruncateReply() {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		w.WriteHeader(status)
		w.Write(b.Bytes()[:b.Len()/2])
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
			}
		}
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// writeFault sends a SOAP fault as Exchange does (HTTP 500), with
// BackOffMilliseconds when back-off is set.
func (s *Server) writeFault(w http.ResponseWriter, status int, code, text string, backoff time.Duration) {
	s.count(func() { s.stats.ByCode[code]++ })
	mx := ""
	if backoff > 0 {
		mx = `<t:MessageXml xmlns:t="` + nsTypes + `"><t:Value Name="BackOffMilliseconds">` + strconv.FormatInt(backoff.Milliseconds(), 10) + `</t:Value></t:MessageXml>`
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="%s"><s:Body><s:Fault><faultcode xmlns:a="%s">a:%s</faultcode><faultstring xml:lang="en-US">%s</faultstring><detail><e:ResponseCode xmlns:e="%s">%s</e:ResponseCode><e:Message xmlns:e="%s">%s</e:Message>%s</detail></s:Fault></s:Body></s:Envelope>`,
		nsSoap, nsTypes, code, esc(text), nsErrors, code, nsErrors, esc(text), mx)
}

// writeThrottled answers overload in the tenant's shape.
func (s *Server) writeThrottled(w http.ResponseWriter, op string, wait time.Duration, messages int) {
	const busyText = "The server cannot service this request right now. Try again later."
	switch s.shape {
	case simtenant.ShapeHTTP503:
		s.count(func() { s.stats.ByCode["HTTP503"]++ })
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "<html><body><h1>Service Unavailable</h1><p>HTTP Error 503. The service is unavailable.</p></body></html>")
	case simtenant.ShapeInternalError:
		s.count(func() { s.stats.ByCode["ErrorInternalServerError"]++ })
		var b strings.Builder
		for range max(messages, 1) {
			b.WriteString(`<m:` + op + `ResponseMessage ResponseClass="Error"><m:MessageText>An internal server error occurred. The operation failed., ` + busyText +
				`</m:MessageText><m:ResponseCode>ErrorInternalServerError</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:MessageXml>` +
				`<t:Value Name="InnerErrorMessageText">` + busyText + `</t:Value><t:Value Name="InnerErrorResponseCode">ErrorServerBusy</t:Value>` +
				`<t:Value Name="InnerErrorDescriptiveLinkKey">0</t:Value><t:Value Name="BackOffMilliseconds">` + strconv.FormatInt(wait.Milliseconds(), 10) +
				`</t:Value></m:MessageXml></m:` + op + `ResponseMessage>`)
		}
		s.writeBody(w, http.StatusOK, op, b.String())
	default:
		s.writeFault(w, http.StatusInternalServerError, "ErrorServerBusy", busyText, max(wait, time.Millisecond))
	}
}

func esc(v string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(v))
	return b.String()
}

// recordXML writes one body element for schema validation, declaring the
// m: and t: prefixes on it when the client declared them further up.
func (s *Server) recordXML(kind, name string, el []byte) {
	if s.record == "" {
		return
	}
	s.mu.Lock()
	s.recN++
	n := s.recN
	s.mu.Unlock()
	doc := string(el)
	if end := strings.IndexAny(doc, " >/"); end > 0 {
		head := doc[:end]
		var decl string
		if !strings.Contains(doc[:strings.IndexByte(doc, '>')], `xmlns:m=`) && strings.Contains(doc, "m:") {
			decl += ` xmlns:m="` + nsMessages + `"`
		}
		if !strings.Contains(doc[:strings.IndexByte(doc, '>')], `xmlns:t=`) && strings.Contains(doc, "t:") {
			decl += ` xmlns:t="` + nsTypes + `"`
		}
		doc = head + decl + doc[end:]
	}
	_ = os.WriteFile(filepath.Join(s.record, fmt.Sprintf("%06d-%s-%s.xml", n, kind, name)), []byte(doc), 0o644)
}
