// Package fuzzscript plays a server's side of an HTTP conversation from a
// fuzz input, for the fuzz targets of the clients (Graph, EWS): the input
// is the sequence of replies, so the fuzzer mutates what a server says, and
// a recorded conversation with a simulator seeds it.
package fuzzscript

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/mailvault/mailvault/domain"
)

// separator divides replies in a script: unlikely inside a reply, easy for
// a fuzzer to produce.
var separator = []byte("\n\x00--\x00\n")

// statuses are the replies' status codes, chosen by each reply's first
// byte: mostly success, and every failure a client must classify.
var statuses = []int{200, 200, 200, 200, 201, 204, 400, 401, 403, 404, 409, 410, 413, 429, 500, 502, 503, 504}

// DefaultMaxRequests ends a conversation that a client keeps going (a
// server answering with endless links): the transport then fails every
// request.
const DefaultMaxRequests = 64

// ErrEnded is what a request gets once the script is played out.
var ErrEnded = errors.New("fuzz script ended")

// Server answers requests with a script's replies, in order. It records
// the hosts asked, so a target can check that no request left the server
// it was configured with.
type Server struct {
	ContentType string
	Host        string // the only host requests may go to
	MaxRequests int
	replies     [][]byte

	mu      sync.Mutex
	n       int
	Foreign []string // hosts other than Host that requests went to
}

// New plays script.
func New(script []byte, host, contentType string) *Server {
	return &Server{replies: bytes.Split(script, separator), Host: host, ContentType: contentType, MaxRequests: DefaultMaxRequests}
}

// RoundTrip implements http.RoundTripper.
func (s *Server) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.URL.Host != s.Host {
		s.Foreign = append(s.Foreign, req.URL.Host)
	}
	if s.n >= s.MaxRequests || s.n >= len(s.replies) {
		return nil, ErrEnded
	}
	r := s.replies[s.n]
	s.n++
	status, body := 200, r
	if len(r) > 0 {
		status, body = statuses[int(r[0])%len(statuses)], r[1:]
	}
	h := http.Header{"Content-Type": {s.ContentType}, "Retry-After": {"1"}}
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), Header: h,
		Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: req, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}, nil
}

// Recorder records a real conversation as a script: wrap the transport a
// client uses with a simulator, then take Script as a seed.
type Recorder struct {
	Base http.RoundTripper

	mu      sync.Mutex
	replies [][]byte
}

// RoundTrip implements http.RoundTripper.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.Base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	code := 0
	for i, s := range statuses {
		if s == resp.StatusCode {
			code = i
			break
		}
	}
	r.mu.Lock()
	r.replies = append(r.replies, append([]byte{byte(code)}, body...))
	r.mu.Unlock()
	return resp, nil
}

// Script is the conversation so far.
func (r *Recorder) Script() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Join(r.replies, separator)
}

// Source is what a backup asks of a client (pipeline.Source's reading
// half, declared here so that this package needs no pipeline).
type Source interface {
	Mailboxes(ctx context.Context) ([]string, error)
	Folders(ctx context.Context, mailbox string) ([]domain.Folder, error)
	List(ctx context.Context, mailbox, folderID, token string) (domain.Page, error)
	Fetch(ctx context.Context, mailbox, folderID string, items []domain.ItemRef, deliver func(domain.Item) error) error
}

// Drive does what a backup asks of a source: the mailboxes, the first
// one's folders (then also, if more is given, what it does with them), and
// for a few folders a page or two of items and their contents. It checks
// what no server may cause: contents delivered for an item not asked for.
func Drive(t testing.TB, ctx context.Context, src Source, more func(mailbox string)) {
	boxes, err := src.Mailboxes(ctx)
	if err != nil || len(boxes) == 0 {
		return
	}
	mailbox := boxes[0]
	folders, err := src.Folders(ctx, mailbox)
	if err != nil {
		return
	}
	if more != nil {
		more(mailbox)
	}
	for i, f := range folders {
		if i == 3 {
			break
		}
		page, err := src.List(ctx, mailbox, f.ID, "")
		if err != nil {
			continue
		}
		if page.Next != "" {
			if next, err := src.List(ctx, mailbox, f.ID, page.Next); err == nil {
				page.Items = append(page.Items, next.Items...)
			}
		}
		asked := page.Items[:min(len(page.Items), 20)]
		_ = src.Fetch(ctx, mailbox, f.ID, asked, func(it domain.Item) error {
			if !slices.ContainsFunc(asked, func(r domain.ItemRef) bool { return r.ID == it.Ref.ID }) {
				t.Errorf("delivered item %q, which was not asked for", it.Ref.ID)
			}
			return nil
		})
	}
}
